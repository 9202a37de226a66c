import { describe, expect, it } from "vitest";
import { connectionsUsed, describePlan, planFor } from "./connections.js";

describe("the bench's PostgreSQL connection budget", () => {
  it("keeps every pool at full size when the server allows it", () => {
    const plan = planFor(391, "test", 4);
    expect([plan.hub, plan.province, plan.naiveHub, plan.naiveProvinces]).toEqual([20, 10, 20, 16]);
  });

  it("shrinks the pools together to fit the shared server's 100 connections", () => {
    for (const budget of [91, 60, 40]) {
      const plan = planFor(budget, "test", 4);
      expect(connectionsUsed(plan, 4)).toBeLessThanOrEqual(budget);
      expect(plan.province).toBeGreaterThanOrEqual(2);
    }
    expect(describePlan(planFor(91, "max_connections 100", 4), 4)).toBe(
      "PostgreSQL connections: budget 91 (max_connections 100); at most 88 open: hub 17+1, provinces 4x(8+1), naive pipeline 17+13, bench 4x1",
    );
  });

  it("refuses a budget too small for a working system, saying what it needs", () => {
    expect(() => planFor(20, "EVC_BENCH_DB_CONNECTIONS", 4)).toThrow(
      /too small.*need \d+ at least/,
    );
  });
});
