import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { Refusal } from "../domain/errors.js";
import { evolve } from "../domain/person.js";
import type { HubEvent, PersonState } from "../domain/types.js";

export interface Erasure {
  position: number;
  erasedAt: Date;
}

/**
 * Crypto-shreds one person's identity, in one transaction: appends IdentityErased (who, why) to
 * their stream, deletes their data key (every sealed identity in their events becomes
 * unreadable; the events and the hash chain do not change), drops the identity from their
 * folded state, and empties the payloads and receipts of their finished directives (which
 * carried it to provinces). Their certificates lose their contents digest (a hash over the
 * identity number, as a replay without the identity has none); records, certificates and
 * migrations are otherwise untouched.
 */
export async function eraseIdentity(
  sql: Sql,
  personKey: string,
  by: string,
  reason: string,
  now: Date,
): Promise<Erasure> {
  return sql
    .begin(async (tx) => {
      const [person] = await tx<{ version: number; state: PersonState }[]>`
      SELECT version, state FROM persons WHERE person_key = ${personKey}`;
      if (!person)
        throw new Refusal("not_found", "NOT_FOUND", "no such person at the hub", {
          field: "identity",
        });
      const state = person.state;
      if (state.openMigrationId)
        throw new Refusal(
          "failed_precondition",
          "MIGRATION_IN_PROGRESS",
          `the person has an open migration (${state.openMigrationId}); erase once it has ended`,
          { field: "identity" },
        );
      const open = Object.values(state.records).find((r) => r.status !== "CLOSED");
      if (open)
        throw new Refusal(
          "failed_precondition",
          "INVALID_STATE",
          `record ${open.recordId} is ${open.status}: close it (CloseRecord) before erasing`,
          { field: "identity" },
        );
      const [key] = await tx<{ dek: Buffer | null }[]>`
      SELECT dek FROM person_keys WHERE person_key = ${personKey} FOR UPDATE`;
      if (!key?.dek && !state.identity)
        throw new Refusal(
          "already_exists",
          "INVALID_STATE",
          "this person's identity is already erased",
          {
            field: "identity",
          },
        );
      const event: HubEvent = {
        type: "IdentityErased",
        data: { by, reason, at: now.toISOString() },
      };
      const version = person.version + 1;
      // The (stream, version) unique constraint refuses this if a command appended meanwhile.
      const [row] = await tx<{ position: string }[]>`
      INSERT INTO events (event_id, stream_id, stream_version, type, data, recorded_at)
      VALUES (${randomUUID()}, ${personKey}, ${version}, ${event.type},
              ${tx.json(event.data)}, ${now})
      RETURNING position`;
      const position = Number(row?.position);
      const after = evolve(state, event, { version, position });
      await tx`UPDATE persons SET version = ${version}, state = ${JSON.stringify(after)}::text::jsonb
      WHERE person_key = ${personKey}`;
      await tx`UPDATE person_keys SET dek = NULL, erased_at = ${now} WHERE person_key = ${personKey}`;
      await tx`UPDATE certificates SET contents_digest = '' WHERE person_key = ${personKey}`;
      await tx`UPDATE directives SET payload = ''::bytea, receipt = NULL
      WHERE person_key = ${personKey} AND state NOT IN ('PENDING', 'DELIVERED')`;
      return { position, erasedAt: now };
    })
    .catch((err: unknown) => {
      if ((err as { code?: string }).code === "23505")
        throw new Refusal(
          "aborted",
          "VERSION_CONFLICT",
          "the person's stream changed while erasing; retry",
          { field: "identity" },
        );
      throw err;
    });
}
