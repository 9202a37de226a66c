import { describe, expect, it } from "vitest";
import { ALL_TABLES, type CopyChunk, Replay, type Row } from "./replay.js";

/** A registration and `doses` doses for each of `persons` persons, in stream order. */
function log(persons: number, doses: number): Row[] {
  const rows: Row[] = [];
  let position = 0;
  for (let i = 0; i < persons; i++) {
    rows.push({
      stream_id: `p${String(i).padStart(6, "0")}`,
      stream_version: 1,
      position: ++position,
      type: "RecordRegistered",
      data: {
        recordId: `r${i}`,
        owner: "110000",
        identity: { idType: "ID_TYPE_RESIDENT_ID", idNumber: `${i}`, name: "名\tTab\\" },
        certificateNumber: `110000-C${i}`,
        doses: [],
        at: "2026-01-01T00:00:00.000Z",
      },
    });
    for (let v = 2; v <= doses + 1; v++) {
      rows.push({
        stream_id: `p${String(i).padStart(6, "0")}`,
        stream_version: v,
        position: ++position,
        type: "DoseReported",
        data: {
          recordId: `r${i}`,
          reportedBy: "440000",
          dose: {
            doseId: `d${i}-${v}`,
            vaccineCode: "HepB",
            doseNumber: v - 1,
            administeredAt: `2026-0${v}-01T00:00:00.000Z`,
            administeredProvinceCode: "440000",
          },
          at: "2026-02-01T00:00:00.000Z",
        },
      });
    }
  }
  return rows;
}

const decode = (chunks: CopyChunk[]) =>
  Object.fromEntries(
    ALL_TABLES.map((t) => [t, chunks.map((c) => Buffer.from(c[t]).toString("utf8")).join("")]),
  );

describe("Replay", () => {
  it("gives the same COPY text whether taken in one chunk or many", () => {
    const rows = log(3000, 3);
    const whole = new Replay();
    whole.add(rows);
    whole.end();
    const one = decode([whole.take()]);

    const pieces = new Replay();
    const chunks: CopyChunk[] = [];
    for (let at = 0; at < rows.length; at += 997) {
      pieces.add(rows.slice(at, at + 997));
      chunks.push(pieces.take());
    }
    pieces.end();
    chunks.push(pieces.take());
    expect(decode(chunks)).toEqual(one);

    // Every person once per table it has rows in; text past the first buffer's 64 KiB kept.
    expect(one.persons?.split("\n").length).toBe(3001);
    expect(one.records?.split("\n").length).toBe(3001);
    expect(one.certificates?.split("\n").length).toBe(3001);
    expect(one.migrations).toBe("");
    expect(Buffer.byteLength(one.persons ?? "")).toBeGreaterThan(1 << 20);
    expect(whole.events).toBe(12_000);
    expect(whole.persons).toBe(3000);
  });

  it("escapes COPY's special characters and keeps UTF-8 intact", () => {
    const replay = new Replay();
    replay.add(log(1, 0));
    replay.end();
    const persons = decode([replay.take()]).persons ?? "";
    // A tab and a backslash inside the state text are escaped; the multi-byte name survives.
    expect(persons).toContain('"name": "名\\\\tTab\\\\\\\\"');
    expect(persons.split("\t")).toHaveLength(3);
    expect(replay.size).toBe(0);
  });
});
