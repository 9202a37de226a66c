import { createHash } from "node:crypto";
import type { DoseJson } from "./types.js";

/**
 * A record's contents digest (evc.national.v1.SnapshotEntry.contents_digest): lowercase hex
 * SHA-256 of `<id number>\n<dose ids sorted byte-wise, joined by \n>`. Dose ids are ASCII (the
 * contract's pattern), so JavaScript's sort and PostgreSQL's COLLATE "C" agree; a province
 * computes the same in SQL over its own copy.
 */
/**
 * Whether a certificate carries its record's contents digest: the current certificate of an
 * ACTIVE record, or of a CLOSED one (its owner keeps the record: a province that lost its
 * database gets a closed record's doses back too).
 */
export function hasContentsDigest(
  record: { status: string; certificateNumber: string } | undefined,
  certificateNumber: string,
): record is { status: string; certificateNumber: string } {
  return (
    (record?.status === "ACTIVE" || record?.status === "CLOSED") &&
    record.certificateNumber === certificateNumber
  );
}

export function contentsDigest(idNumber: string, doses: readonly DoseJson[]): string {
  const ids = doses.map((d) => d.doseId).sort();
  return createHash("sha256")
    .update(`${idNumber}\n${ids.join("\n")}`, "utf8")
    .digest("hex");
}
