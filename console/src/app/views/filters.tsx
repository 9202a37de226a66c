import { enumName } from "../format.js";

/** A listing's filter: the state (an enum of the contract) and the province. */
export interface Filter {
  state: number;
  /** As typed; only a full code filters (provinceCode() gives what the hub is asked). */
  province: string;
}

/** The province code to ask the hub for: empty (every province) until six digits are typed. */
export function provinceCode(f: Filter): string {
  return /^\d{6}$/.test(f.province) ? f.province : "";
}

/** Every value of a contract enum but UNSPECIFIED (0), in order. */
export function enumValues(e: Record<string, string | number>): number[] {
  return Object.values(e).filter((v): v is number => typeof v === "number" && v !== 0);
}

/** The filter bar above a listing. */
export function Filters(props: {
  /** The select's name (tests and people find it by it). */
  name: string;
  names: Record<number, string>;
  anyLabel: string;
  value: Filter;
  onChange: (f: Filter) => void;
}) {
  const { value, onChange } = props;
  return (
    <div class="filters">
      <label>
        State{" "}
        <select
          name={props.name}
          value={String(value.state)}
          onChange={(e) => onChange({ ...value, state: Number(e.currentTarget.value) })}
        >
          <option value="0">{props.anyLabel}</option>
          {enumValues(props.names).map((s) => (
            <option value={String(s)}>{enumName(props.names, s)}</option>
          ))}
        </select>
      </label>
      <label>
        Province{" "}
        <input
          name="province"
          placeholder="e.g. 110000"
          size={8}
          value={value.province}
          onInput={(e) => onChange({ ...value, province: e.currentTarget.value.trim() })}
        />
      </label>
    </div>
  );
}
