import { createHash } from "node:crypto";
import type { DoseJson } from "./types.js";

/**
 * A record's contents digest (evc.national.v1.SnapshotEntry.contents_digest): lowercase hex
 * SHA-256 of `<id number>\n<dose ids sorted byte-wise, joined by \n>`. Dose ids are ASCII (the
 * contract's pattern), so JavaScript's sort and PostgreSQL's COLLATE "C" agree; a province
 * computes the same in SQL over its own copy.
 */
export function contentsDigest(idNumber: string, doses: readonly DoseJson[]): string {
  const ids = doses.map((d) => d.doseId).sort();
  return createHash("sha256")
    .update(`${idNumber}\n${ids.join("\n")}`, "utf8")
    .digest("hex");
}
