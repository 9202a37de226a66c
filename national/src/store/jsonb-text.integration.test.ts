import { TEST_DATABASE_URL } from "@evc-interop/testing";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { jsonbText } from "./jsonb-text.js";

const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
afterAll(() => sql.end());

/** PostgreSQL's own text of the value stored as jsonb (what the live persons table holds). */
async function pgText(value: unknown): Promise<string> {
  const [row] = await sql<
    { t: string }[]
  >`SELECT (${JSON.stringify(value)}::text::jsonb)::text AS t`;
  return row?.t ?? "";
}

describe("jsonbText", () => {
  const cases: [string, unknown][] = [
    ["scalars", [null, true, false, 0, -0, 7, -42, 3.25, 0.1, 1e20, 9007199254740991, ""]],
    ["keys ordered shortest first, then byte-wise", { bb: 1, a: 2, ab: 3, B: 4, aaa: 5, Z: 6 }],
    ["non-ASCII keys ordered by UTF-8 bytes", { 名: 1, z: 2, é: 3, zz: 4, 北京: 5, ab: 6 }],
    [
      "strings needing escapes",
      [
        'quote " backslash \\ slash /',
        "tab\tnl\ncr\rff\fbs\b",
        "ctl \u0001\u001f\u007f",
        "北京 é 😀",
      ],
    ],
    ["empty containers", { o: {}, a: [], nested: [{}, [], [[]]] }],
    ["undefined properties are left out", { keep: 1, drop: undefined, arr: [undefined, 1] }],
    [
      "a person state",
      {
        version: 3,
        records: {
          r1: {
            recordId: "r1",
            owner: "110000",
            status: "ACTIVE",
            doses: [{ doseId: "d1", doseNumber: 1, administeredAt: "2026-01-01T00:00:00Z" }],
          },
        },
        identity: { idType: "ID_TYPE_RESIDENT_ID", name: "张三 O'Brien" },
        openMigrationId: undefined,
        sequences: { "r1|110000": 2 },
      },
    ],
  ];
  for (const [name, value] of cases) {
    it(`prints what PostgreSQL prints: ${name}`, async () => {
      expect(jsonbText(value)).toBe(await pgText(value));
    });
  }

  it("keeps the key order right when many objects share a shape", async () => {
    const shapes = Array.from({ length: 5000 }, (_, i) => ({ [`k${i}`]: i, b: i, aa: [i] }));
    expect(jsonbText(shapes)).toBe(await pgText(shapes));
  });

  it("orders each key list on its own when objects share a first key", async () => {
    // Key orders are remembered per list of keys; lists that start alike must not mix.
    const objects = [
      { a: 1, bb: 2, c: 3 },
      { a: 1, c: 3, bb: 2 },
      { a: 1, bb: 2 },
      { a: 1, bb: 2, c: 3, dd: undefined },
      { a: 1, bb: 2, c: 3, dd: 4 },
      { a: 1, bb: 2, c: 3 },
    ];
    for (const o of objects) expect(jsonbText(o)).toBe(await pgText(o));
  });

  it("refuses numbers jsonb would print differently", () => {
    expect(() => jsonbText(1e-9)).toThrow(RangeError);
    expect(() => jsonbText(1e21)).toThrow(RangeError);
    expect(() => jsonbText(10n)).toThrow(TypeError);
  });
});
