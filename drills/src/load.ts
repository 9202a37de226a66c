import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import {
  type Identity,
  IdentitySchema,
  IdType,
  Sex,
} from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason, type Dose, DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { residentId } from "@evc-interop/runtime";
import type { Ledger } from "@evc-interop/testing";
import type { Sql } from "postgres";
import type { Random } from "./random.js";

/** What one drill's operations came to. */
export interface LoadResult {
  attempted: number;
  acknowledged: number;
}

/** Every call of the load has a deadline: a killed process must not hang the drill. */
const CALL = { timeoutMs: 8000 };

/**
 * The drill's mixed load, driven through each province's control API as an operator would:
 * registrations, doses (at the owner and elsewhere), documents linked to a person (a passport
 * registered with the first document on file), migrations and closures (deaths and
 * deletions, during migrations too), aimed mostly at a few recent persons so that they race
 * each other. Every answer goes into the ledger.
 */
export class Load {
  private readonly persons: Identity[] = [];
  /** Documents linked to a person since (by their first document's number). */
  private readonly documents = new Map<string, Identity[]>();
  private readonly clients = new Map<string, Client<typeof ControlService>>();
  private doses = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly hub: Sql,
    transports: Map<string, Transport>,
  ) {
    for (const [code, t] of transports) this.clients.set(code, createClient(ControlService, t));
  }

  private client(code: string): Client<typeof ControlService> {
    const c = this.clients.get(code);
    if (!c) throw new Error(`no province ${code}`);
    return c;
  }

  private newIdentity(rnd: Random): Identity {
    return create(IdentitySchema, {
      idType: IdType.RESIDENT_ID,
      idNumber: residentId(
        `110101${2018 + rnd.int(0, 6)}0${rnd.int(1, 9)}1${rnd.int(0, 9)}${rnd.digits(3)}`,
      ),
      name: "Drill Child",
      birthDate: timestampFromDate(new Date("2020-01-15T00:00:00Z")),
      sex: rnd.pick([Sex.FEMALE, Sex.MALE]),
    });
  }

  private newDose(rnd: Random, province: string): Dose {
    this.doses += 1;
    return create(DoseSchema, {
      doseId: `drill-${rnd.seed}-${this.doses}-${rnd.digits(6)}`,
      vaccineCode: rnd.pick(["HepB", "BCG", "DTaP", "MMR"]),
      doseNumber: rnd.int(1, 4),
      administeredAt: timestampFromDate(new Date()),
      administeredProvinceCode: province,
    });
  }

  /** One of the last few persons registered: the ones whose operations race. */
  private hotPerson(rnd: Random): Identity | undefined {
    const recent = this.persons.slice(-6);
    return recent.length === 0 ? undefined : rnd.pick(recent);
  }

  /** Runs `count` operations at once (staggered over a few hundred ms). */
  async run(rnd: Random, count: number): Promise<LoadResult> {
    const codes = [...this.clients.keys()];
    const ops: Promise<boolean>[] = [];
    for (let i = 0; i < count; i++) {
      const delay = rnd.int(0, 400);
      const roll = rnd.next();
      const province = rnd.pick(codes);
      const person = this.hotPerson(rnd);
      let op: () => Promise<boolean>;
      if (!person || roll < 0.25) op = () => this.register(rnd, province);
      else if (roll < 0.57) op = () => this.dose(rnd, this.anyDocument(rnd, person), province);
      else if (roll < 0.65) op = () => this.link(rnd, person, province);
      else if (roll < 0.9) op = () => this.migrate(this.anyDocument(rnd, person), province);
      else op = () => this.close(rnd, person);
      ops.push(new Promise((r) => setTimeout(r, delay)).then(op));
    }
    const results = await Promise.all(ops);
    return { attempted: count, acknowledged: results.filter(Boolean).length };
  }

  private async register(rnd: Random, province: string): Promise<boolean> {
    const identity = this.newIdentity(rnd);
    this.persons.push(identity);
    const birth = rnd.next() < 0.5 ? [this.newDose(rnd, province)] : [];
    try {
      await this.client(province).registerRecord({ identity, doses: birth }, CALL);
      this.ledger.registered(identity.idNumber, province, true);
      for (const d of birth) this.ledger.dose(identity.idNumber, d.doseId, province, true);
      return true;
    } catch {
      this.ledger.registered(identity.idNumber, province, false);
      for (const d of birth) this.ledger.dose(identity.idNumber, d.doseId, province, false);
      return false;
    }
  }

  /** Where the hub says the person's record is now (the drill only picks whom to ask). */
  private async locate(identity: Identity) {
    const [row] = await this.hub<
      { record_id: string | null; owner: string | null; target: string | null }[]
    >`
      SELECT state->>'currentRecordId' AS record_id,
        state->'records'->(state->>'currentRecordId')->>'owner' AS owner,
        state->'migrations'->(state->>'openMigrationId')->>'target' AS target
      FROM persons WHERE state->'identity'->>'idNumber' = ${identity.idNumber}`;
    return row;
  }

  /** The person under one of their documents: the first, or one linked to them since. */
  private anyDocument(rnd: Random, person: Identity): Identity {
    const linked = this.documents.get(person.idNumber) ?? [];
    return linked.length > 0 && rnd.next() < 0.5 ? rnd.pick(linked) : person;
  }

  /**
   * A passport of the person registered with their first document on file: linked to them by
   * the hub when asked of the owner (refused naming the owner anywhere else), never a second
   * person.
   */
  private async link(rnd: Random, person: Identity, anywhere: string): Promise<boolean> {
    // Mostly the owner the hub names now: a link anywhere else is refused.
    const owner = (await this.locate(person))?.owner;
    const province = owner && this.clients.has(owner) && rnd.next() < 0.7 ? owner : anywhere;
    const passport = create(IdentitySchema, {
      ...person,
      idType: IdType.PASSPORT,
      idNumber: `E${rnd.digits(8)}`,
    });
    try {
      await this.client(province).registerRecord({ identity: passport, knownAs: [person] }, CALL);
      this.ledger.linked(passport.idNumber, person.idNumber);
      this.documents.set(person.idNumber, [
        ...(this.documents.get(person.idNumber) ?? []),
        passport,
      ]);
      return true;
    } catch {
      return false;
    }
  }

  private async dose(rnd: Random, identity: Identity, province: string): Promise<boolean> {
    const dose = this.newDose(rnd, province);
    const res = await this.client(province)
      .recordDose({ identity, dose }, CALL)
      .catch(() => undefined);
    this.ledger.dose(
      identity.idNumber,
      dose.doseId,
      province,
      res !== undefined,
      res !== undefined && !res.reportedToHub,
    );
    return res !== undefined;
  }

  private async migrate(identity: Identity, target: string): Promise<boolean> {
    try {
      const { migrationId } = await this.client(target).migrateIn({ identity }, CALL);
      this.ledger.migrated(identity.idNumber, migrationId, target);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A death or a deletion, asked of the owner the hub names now or, with a migration open, as
   * often of its target (either may record it; it ends the migration).
   */
  private async close(rnd: Random, identity: Identity): Promise<boolean> {
    const row = await this.locate(identity);
    const asked = row?.target && rnd.next() < 0.5 ? row.target : row?.owner;
    if (!row?.record_id || !asked || !this.clients.has(asked)) return false;
    try {
      await this.client(asked).closeRecord(
        {
          recordId: row.record_id,
          reason: rnd.pick([CloseReason.DELETED, CloseReason.DECEASED]),
        },
        CALL,
      );
      this.ledger.closed(identity.idNumber, row.record_id, true);
      return true;
    } catch {
      return false;
    }
  }
}
