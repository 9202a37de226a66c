import {
  DirectiveState,
  type DirectiveStatus,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { useState } from "preact/hooks";
import { age, enumName, when } from "../format.js";
import type { Hub } from "../hub.js";
import { usePoll } from "../use-poll.js";
import { Action } from "./action.js";
import { type Filter, Filters, provinceCode } from "./filters.js";

/** States an operator may settle another way (OperatorService.SupersedeDirective). */
const SETTLEABLE = new Set([
  DirectiveState.FAILED,
  DirectiveState.REJECTED,
  DirectiveState.DELIVERED,
]);

/** Dead letters (FAILED) first; any state on demand; re-drive or supersede what is stuck. */
export function Directives(props: { hub: Hub; canAct: boolean }) {
  const [filter, setFilter] = useState<Filter>({ state: DirectiveState.FAILED, province: "" });
  const polled = usePoll(
    async () =>
      (
        await props.hub.directives.listDirectives({
          state: filter.state,
          provinceCode: provinceCode(filter),
          pageSize: 200,
        })
      ).directives,
    3000,
    `${filter.state}|${provinceCode(filter)}`,
  );
  return (
    <section>
      <Filters
        name="directive-state"
        names={DirectiveState}
        anyLabel="any but ACKNOWLEDGED"
        value={filter}
        onChange={setFilter}
      />
      {polled.error && <p class="error">{polled.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Directive</th>
            <th>Province</th>
            <th>Action</th>
            <th>Sequence</th>
            <th>State</th>
            <th>Publishes</th>
            <th>Last published</th>
            <th>Province said</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(polled.data ?? []).map((d) => (
            <DirectiveRow d={d} hub={props.hub} canAct={props.canAct} refresh={polled.refresh} />
          ))}
        </tbody>
      </table>
      {polled.data?.length === 0 && <p class="empty">No directive matches.</p>}
    </section>
  );
}

function DirectiveRow(props: {
  d: DirectiveStatus;
  hub: Hub;
  canAct: boolean;
  refresh: () => Promise<void>;
}) {
  const { d } = props;
  const dir = d.directive;
  const id = dir?.directiveId ?? "";
  return (
    <tr data-directive={id} data-state={enumName(DirectiveState, d.state)}>
      <td class="id">{id}</td>
      <td>{dir?.targetProvinceCode}</td>
      <td>{dir?.action.case}</td>
      <td>{String(dir?.recordSequence ?? "")}</td>
      <td class={`state s-${enumName(DirectiveState, d.state)}`}>
        {enumName(DirectiveState, d.state)}
      </td>
      <td>{d.publishCount}</td>
      <td title={when(d.lastPublishedAt)}>
        {d.lastPublishedAt ? `${age(d.lastPublishedAt)} ago` : "-"}
      </td>
      <td>{d.receipt?.detail}</td>
      <td>
        {(d.state === DirectiveState.FAILED ||
          (d.state === DirectiveState.SUPERSEDED && !d.receipt)) &&
          props.canAct && (
            <Action
              label="Re-drive"
              warning={`Publishes it to ${dir?.targetProvinceCode} again: do it once the province can take it. The hub refuses if a later directive supersedes it.`}
              run={async (reason) => {
                await props.hub.operator.redriveDirective({ directiveId: id, reason });
                await props.refresh();
              }}
            />
          )}
        {SETTLEABLE.has(d.state) && props.canAct && (
          <Action
            label="Supersede"
            warning="Stops republishing it and clears its alarm, once settled another way. What was published stays on the bus and is still applied in order."
            run={async (reason) => {
              await props.hub.operator.supersedeDirective({ directiveId: id, reason });
              await props.refresh();
            }}
          />
        )}
      </td>
    </tr>
  );
}
