import { describe, expect, it } from "vitest";
import { gapProvenClosed } from "./lost-predecessors.js";

describe("a gap the hub proves closed", () => {
  it("the hub waits for the parked directive and for none before it above the record's last: proven", () => {
    expect(gapProvenClosed([4], 1, 4)).toBe(true);
    // Ones at or below the last were applied here (their receipts on their way).
    expect(gapProvenClosed([1, 4, 6], 1, 4)).toBe(true);
  });

  it("the hub still waits for one in the gap: not proven (it is applied first)", () => {
    expect(gapProvenClosed([3, 4], 1, 4)).toBe(false);
  });

  it("the hub does not hold the parked directive (sent by another, or a hub restored to before it), or was not asked: not proven", () => {
    expect(gapProvenClosed([], 1, 4)).toBe(false);
    expect(gapProvenClosed([5], 1, 4)).toBe(false);
    expect(gapProvenClosed(undefined, 1, 4)).toBe(false);
  });
});
