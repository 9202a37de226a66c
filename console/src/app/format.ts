import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";

/** A timestamp as the operator reads it (UTC, to the second), or "-". */
export function when(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString().replace("T", " ").slice(0, 19) : "-";
}

/** How long ago, roughly ("42 s", "7 min", "3 h"). */
export function age(t: Timestamp | undefined, now = Date.now()): string {
  if (!t) return "-";
  const s = Math.max(0, Math.round((now - timestampDate(t).getTime()) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** An enum value's name without its prefix (MigrationState.NEEDS_OPERATOR -> NEEDS_OPERATOR). */
export function enumName(e: Record<number, string>, v: number): string {
  return e[v] ?? String(v);
}
