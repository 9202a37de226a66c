import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.js";

interface Item {
  id: string;
  key: string;
  done: (how: string) => void;
}

/** A group commit whose "transactions" are recorded; `failBatch` makes every batch fail. */
function harness(maxBatch: number, failBatch = false) {
  const batches: string[][] = [];
  const alone: string[] = [];
  const gc = new GroupCommit<Item>({
    maxBatch,
    keys: (i) => [i.key],
    compare: (a, b) => a.key.localeCompare(b.key),
    runBatch: async (items) => {
      if (failBatch) throw new Error("could not commit");
      batches.push(items.map((i) => i.id));
      for (const i of items) i.done("batch");
    },
    runAlone: async (i) => {
      alone.push(i.id);
      i.done("alone");
    },
  });
  const submit = (id: string, key: string) =>
    new Promise<string>((resolve) => gc.submit({ id, key, done: resolve }));
  return {
    gc,
    batches,
    alone,
    submit,
  };
}

describe("GroupCommit", () => {
  it("puts what arrives together into one transaction, in key order, at most maxBatch", async () => {
    const h = harness(3);
    const done = await Promise.all([
      h.submit("a", "k3"),
      h.submit("b", "k1"),
      h.submit("c", "k2"),
      h.submit("d", "k4"),
    ]);
    expect(h.batches).toEqual([["b", "c", "a"]]);
    expect(h.alone).toEqual(["d"]);
    expect(done).toEqual(["batch", "batch", "batch", "alone"]);
  });

  it("never puts two items of one key in one transaction, and keeps their order", async () => {
    const h = harness(10);
    await Promise.all([
      h.submit("first", "same"),
      h.submit("other", "else"),
      h.submit("second", "same"),
      h.submit("third", "same"),
    ]);
    expect(h.batches).toEqual([["other", "first"]]);
    expect(h.alone).toEqual(["second", "third"]);
  });

  it("runs each item of a batch that cannot commit again on its own", async () => {
    const h = harness(10, true);
    const done = await Promise.all([h.submit("a", "k1"), h.submit("b", "k2")]);
    expect(h.batches).toEqual([]);
    expect(h.alone.sort()).toEqual(["a", "b"]);
    expect(done).toEqual(["alone", "alone"]);
  });

  it("with maxBatch 1, runs every item at once on its own", async () => {
    const h = harness(1);
    await Promise.all([h.submit("a", "k1"), h.submit("b", "k2")]);
    expect(h.batches).toEqual([]);
    expect(h.alone).toEqual(["a", "b"]);
  });

  it("runNow runs a given list in as few transactions as its keys allow", async () => {
    const h = harness(2);
    const settled: string[] = [];
    const items = ["k1", "k2", "k1", "k3"].map((key, n) => ({
      id: `i${n}`,
      key,
      done: (how: string) => settled.push(`i${n}:${how}`),
    }));
    await h.gc.runNow(items);
    // Not bounded by maxBatch: the caller holds them all already.
    expect(h.batches).toEqual([["i0", "i1", "i3"]]);
    expect(h.alone).toEqual(["i2"]);
    expect(settled).toHaveLength(4);
  });
});
