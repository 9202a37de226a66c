import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * #18 part 3: the operator console, driven in Debian's headless Chromium against a real hub. A
 * migration is stuck (its target, 510000, runs no system), an operator signs in, sees it, forces
 * it to abort from the page, and both the page and the database show the result.
 */
const CHROMIUM = process.env.EVC_CHROMIUM ?? "/usr/bin/chromium";
/** Set to a folder to keep screenshots of the main views (docs/console/ holds the last ones). */
const SHOTS = process.env.EVC_CONSOLE_SCREENSHOTS;

let env: TestHubEnv;
let beijing: FakeProvince;
let browser: Browser;

beforeAll(async () => {
  env = await startTestHub({
    activateDeadlineMs: 300,
    compensateDeadlineMs: 150,
    compensateRounds: 1,
    redeliverAfterMs: 100,
  });
  beijing = await FakeProvince.start(env, "110000");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  if (SHOTS) mkdirSync(resolve(SHOTS), { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await beijing?.stop();
  await env?.close();
});

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: join(resolve(SHOTS), `${name}.png`), fullPage: true });
}

async function signIn(page: Page, subject: string): Promise<void> {
  await page.goto(`${env.hub.url}/console/`);
  await page.getByLabel("Operator token").fill(await env.creds.token(subject));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(`[data-subject="${subject}"]`).waitFor();
}

describe("the operator console in a browser", () => {
  it("an operator forces a stuck migration to abort from the page; page and database agree", async () => {
    const child = newIdentity("Console Child");
    const certificate = certificateNumber("110000");
    const { recordId } = await env.client(RecordService, "province:110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: child,
      certificateNumber: certificate,
    });
    beijing.records.set(recordId, { identity: child, doses: [], certificate, status: "ACTIVE" });
    const { migration } = await env
      .client(MigrationService, "province:510000")
      .requestMigration({ identity: child, idempotencyKey: randomUUID() });
    const id = migration?.migrationId ?? "";
    await until("the migration waits for an operator", async () => {
      const [r] = await env.hub.sql<{ state: string }[]>`
        SELECT state FROM migrations WHERE migration_id = ${id}`;
      return r?.state === "NEEDS_OPERATOR" ? true : undefined;
    });

    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    await signIn(page, "operator:ops");
    // The first view lists what needs an operator, live.
    const row = page.locator(`tr[data-migration="${id}"]`);
    await expect.poll(() => row.getAttribute("data-state")).toBe("NEEDS_OPERATOR");
    await shot(page, "stuck");

    await row.getByRole("button", { name: "Force abort" }).click();
    await expect(row.getByText("Only after 510000 confirmed").isVisible()).resolves.toBe(true);
    await row.getByLabel("reason").fill("TICKET-42: Sichuan confirmed no certificate");
    await row.getByRole("button", { name: "Confirm force abort" }).click();
    // The page: gone from the stuck list; COMPENSATED among all migrations.
    await row.waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Migrations", exact: true }).click();
    const after = page.locator(`tr[data-migration="${id}"]`);
    await expect.poll(() => after.getAttribute("data-state")).toBe("COMPENSATED");
    await expect(after.textContent()).resolves.toContain("force-aborted by operator:ops");

    // The database: the migration ended, the lock released, the event names the operator.
    const [m] = await env.hub.sql<{ state: string }[]>`
      SELECT state FROM migrations WHERE migration_id = ${id}`;
    expect(m?.state).toBe("COMPENSATED");
    const events = await env.hub.sql<{ data: { by?: string; reason?: string } }[]>`
      SELECT data FROM events WHERE type = 'MigrationCompensated' AND data->>'migrationId' = ${id}`;
    expect(events.map((e) => e.data.by)).toEqual(["operator:ops"]);
    expect(events[0]?.data.reason).toContain("TICKET-42");

    // The steps the ended migration no longer waits for: superseded, not dead letters.
    await page.getByRole("button", { name: "Directives", exact: true }).click();
    await page.locator("select[name=directive-state]").selectOption({ label: "SUPERSEDED" });
    await expect
      .poll(() => page.locator('tr[data-state="SUPERSEDED"]').allTextContents())
      .toEqual([
        expect.stringContaining("activateMigratedRecord"),
        expect.stringContaining("revokeCertificate"),
      ]);
    await shot(page, "directives");

    // The person's audit trail, from the page: the forced end, with who and why.
    await page.getByRole("button", { name: "Person", exact: true }).click();
    await page.locator("select[name=id-type]").selectOption({ label: "RESIDENT_ID" });
    await page.locator("input[name=id-number]").fill(child.idNumber);
    await page.locator("input[name=name]").fill(child.name);
    const birth = child.birthDate ? new Date(Number(child.birthDate.seconds) * 1000) : undefined;
    await page.locator("input[name=birth-date]").fill(birth?.toISOString().slice(0, 10) ?? "");
    await page.getByRole("button", { name: "Show history" }).click();
    const forced = page.locator('tr[data-event="MigrationCompensated"]');
    await expect(forced.textContent()).resolves.toContain('"by":"operator:ops"');
    await shot(page, "person");

    await page.getByRole("button", { name: "Provinces", exact: true }).click();
    await page.locator('tr[data-province="110000"]').waitFor();
    await shot(page, "provinces");
    await page.getByRole("button", { name: "Chain", exact: true }).click();
    await page.getByRole("button", { name: "Verify the log" }).click();
    await expect(page.locator("[data-chain]").getAttribute("data-chain")).resolves.toBe("intact");
    await shot(page, "chain");
    await page.close();
  }, 90_000);

  it("a viewer watches and cannot act; a bad token never gets past sign-in", async () => {
    const page = await browser.newPage();
    await page.goto(`${env.hub.url}/console/`);
    await page.getByLabel("Operator token").fill("not a token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("this is not a token");
    await page.getByLabel("Operator token").fill(await env.creds.token("province:440000"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain(
      "the console is for operators and viewers",
    );
    await signIn(page, "viewer:watch");
    await page.getByRole("button", { name: "Migrations", exact: true }).click();
    await page.locator("tr[data-migration]").first().waitFor();
    await expect(page.getByRole("button", { name: "Force abort" }).count()).resolves.toBe(0);
    await expect(page.getByRole("button", { name: "Person", exact: true }).count()).resolves.toBe(
      0,
    );
    await page.close();
  }, 60_000);

  it("the page loads nothing but itself (Content-Security-Policy)", async () => {
    const res = await fetch(`${env.hub.url}/console/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect((await fetch(`${env.hub.url}/console/nothing.js`)).status).toBe(404);
  });
});
