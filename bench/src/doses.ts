import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { newDose } from "@evc-interop/testing";
import { type Figure, figure, pool, until } from "./measure.js";
import { IN_FLIGHT } from "./migrations.js";
import { MIGRATIONS, PROVINCES, ROUNDS, rounds } from "./settings.js";
import { registerPersons, type System } from "./system.js";

/** Cross-province doses end to end: reported at one province, appended at the owner. */

export async function doseFigure(s: System): Promise<Figure> {
  const clients = PROVINCES.map((code) => s.env.client(DoseService, `province:${code}`));
  const people = await registerPersons(s, 400);
  const perRound = MIGRATIONS;
  /** Doses held by all the provinces' stores together. */
  const dosesHeld = async () => {
    const counts = await Promise.all(
      s.provinces.map(
        async (p) =>
          (await p.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM doses`)[0]?.n ?? 0,
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  };
  const r = await rounds(
    `cross-province doses/s (${perRound} doses, ${IN_FLIGHT} in flight)`,
    ROUNDS,
    async () => {
      const doses = Array.from({ length: perRound }, (_, i) => {
        const person = people[i % people.length] as (typeof people)[number];
        const giver = (person.owner + 1) % PROVINCES.length;
        return { person, giver, dose: newDose(PROVINCES[giver] ?? "110000") };
      });
      const expected = (await dosesHeld()) + perRound;
      const start = performance.now();
      await pool(doses, IN_FLIGHT, async ({ person, giver, dose }) => {
        await (clients[giver] as (typeof clients)[number]).reportDose({
          identity: person.identity,
          dose,
        });
      });
      await until(
        "doses appended at the owners",
        async () => (await dosesHeld()) >= expected,
        300_000,
        10,
      );
      return perRound / ((performance.now() - start) / 1000);
    },
  );
  return figure(
    "doses",
    `Cross-province doses/s end to end (report → appended in the owner's store), ${IN_FLIGHT} in flight`,
    "doses/s",
    r,
  );
}
