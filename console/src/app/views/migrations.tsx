import {
  type Migration,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { useState } from "preact/hooks";
import { age, enumName, when } from "../format.js";
import type { Hub } from "../hub.js";
import { usePoll } from "../use-poll.js";
import { Action } from "./action.js";
import { type Filter, Filters, provinceCode } from "./filters.js";

/** Migrations live, filtered by state and province; the stuck ones with their way out. */
export function Migrations(props: { hub: Hub; canAct: boolean; initialState?: MigrationState }) {
  const [filter, setFilter] = useState<Filter>({
    state: props.initialState ?? MigrationState.UNSPECIFIED,
    province: "",
  });
  const polled = usePoll(
    async () =>
      (
        await props.hub.migrations.listMigrations({
          state: filter.state,
          provinceCode: provinceCode(filter),
          pageSize: 200,
        })
      ).migrations,
    3000,
    `${filter.state}|${provinceCode(filter)}`,
  );
  return (
    <section>
      <Filters
        name="state"
        names={MigrationState}
        anyLabel="any"
        value={filter}
        onChange={setFilter}
      />
      {polled.error && <p class="error">{polled.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Migration</th>
            <th>State</th>
            <th>From → to</th>
            <th>Attempt</th>
            <th>Updated</th>
            <th>Step deadline</th>
            <th>Why it ended</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(polled.data ?? []).map((m) => (
            <MigrationRow m={m} hub={props.hub} canAct={props.canAct} refresh={polled.refresh} />
          ))}
        </tbody>
      </table>
      {polled.data?.length === 0 && <p class="empty">No migration matches.</p>}
    </section>
  );
}

function MigrationRow(props: {
  m: Migration;
  hub: Hub;
  canAct: boolean;
  refresh: () => Promise<void>;
}) {
  const { m } = props;
  const stuck =
    m.state === MigrationState.NEEDS_OPERATOR || m.state === MigrationState.COMPENSATING;
  return (
    <tr data-migration={m.migrationId} data-state={enumName(MigrationState, m.state)}>
      <td class="id">{m.migrationId}</td>
      <td class={`state s-${enumName(MigrationState, m.state)}`}>
        {enumName(MigrationState, m.state)}
      </td>
      <td>
        {m.sourceProvinceCode} → {m.targetProvinceCode}
      </td>
      <td>{m.attempt}</td>
      <td title={when(m.updatedAt)}>{age(m.updatedAt)} ago</td>
      <td>{when(m.stepDeadline)}</td>
      <td>{m.endReason}</td>
      <td>
        {m.state === MigrationState.SOURCE_SUSPENDED && props.canAct && (
          <Action
            label="Force complete"
            warning={`Only after ${m.targetProvinceCode} confirmed it holds the record ACTIVE with the certificate you give: the migration completes with it.`}
            extra={{
              name: "certificate",
              placeholder: `${m.targetProvinceCode}-... (the target's)`,
            }}
            run={async (reason, certificateNumber) => {
              await props.hub.operator.forceCompleteMigration({
                migrationId: m.migrationId,
                certificateNumber,
                reason,
              });
              await props.refresh();
            }}
          />
        )}
        {stuck && props.canAct && (
          <Action
            label="Force abort"
            warning={`Only after ${m.targetProvinceCode} confirmed it holds no valid certificate for this person: ${m.sourceProvinceCode} gets the record back and the lock is released.`}
            run={async (reason) => {
              await props.hub.operator.forceAbortMigration({ migrationId: m.migrationId, reason });
              await props.refresh();
            }}
          />
        )}
      </td>
    </tr>
  );
}
