import { describe, expect, it } from "vitest";
import { CertificateCache } from "./cache.js";
import type { CertificateRow } from "./rows.js";

function row(status: CertificateRow["status"]): CertificateRow {
  return {
    certificate_number: "110000-CACHE1",
    record_id: "r1",
    status,
    revocation_reason: null,
    owner_province: "110000",
    issued_at: new Date(0),
    status_changed_at: new Date(0),
    hub_version: 1,
  };
}

const N = "110000-CACHE1";

/** A loader that counts its calls and answers with whatever `current` is when it resolves. */
function source(initial: CertificateRow["status"]) {
  const s = {
    current: initial,
    loads: 0,
    load: async () => {
      s.loads += 1;
      await Promise.resolve();
      return row(s.current);
    },
  };
  return s;
}

describe("certificate cache", () => {
  it("reads through until change notifications are live", async () => {
    const cache = new CertificateCache();
    const db = source("NORMAL");
    await cache.get(N, db.load);
    await cache.get(N, db.load);
    expect(db.loads).toBe(2);
    cache.listening();
    await cache.get(N, db.load);
    await cache.get(N, db.load);
    expect(db.loads).toBe(3);
  });

  it("a committed change is read fresh", async () => {
    const cache = new CertificateCache();
    cache.listening();
    const db = source("NORMAL");
    expect((await cache.get(N, db.load))?.status).toBe("NORMAL");
    db.current = "SUSPENDED";
    cache.changed(N);
    expect((await cache.get(N, db.load))?.status).toBe("SUSPENDED");
  });

  it("a local write bypasses the cache from its first statement until its notification", async () => {
    const cache = new CertificateCache();
    cache.listening();
    const db = source("NORMAL");
    await cache.get(N, db.load);
    cache.willChange(N);
    // Committed, notification not yet received: still read from the database.
    db.current = "SUSPENDED";
    expect((await cache.get(N, db.load))?.status).toBe("SUSPENDED");
    expect((await cache.get(N, db.load))?.status).toBe("SUSPENDED");
    const before = db.loads;
    cache.changed(N);
    await cache.get(N, db.load);
    await cache.get(N, db.load);
    expect(db.loads).toBe(before + 1);
  });

  it("does not keep a read that raced with a change", async () => {
    const cache = new CertificateCache();
    cache.listening();
    const db = source("NORMAL");
    const racing = cache.get(N, async () => {
      const old = row("NORMAL");
      // The change commits and is notified while this read is in flight.
      db.current = "REVOKED";
      cache.changed(N);
      return old;
    });
    expect((await racing)?.status).toBe("NORMAL");
    expect((await cache.get(N, db.load))?.status).toBe("REVOKED");
  });

  it("forgets everything when the notification stream reconnects or stops", async () => {
    const cache = new CertificateCache();
    cache.listening();
    const db = source("NORMAL");
    await cache.get(N, db.load);
    expect(cache.size).toBe(1);
    cache.listening();
    expect(cache.size).toBe(0);
    await cache.get(N, db.load);
    cache.stopped();
    expect(cache.size).toBe(0);
    await cache.get(N, db.load);
    expect(cache.size).toBe(0);
  });

  it("keeps at most its capacity, dropping the oldest", async () => {
    const cache = new CertificateCache(2);
    cache.listening();
    for (const n of ["a", "b", "c"]) {
      await cache.get(n, async () => ({ ...row("NORMAL"), certificate_number: n }));
    }
    expect(cache.size).toBe(2);
    let loaded = false;
    await cache.get("a", async () => {
      loaded = true;
      return row("NORMAL");
    });
    expect(loaded).toBe(true);
  });
});
