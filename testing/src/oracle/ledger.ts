/**
 * What clients were told: kept by whoever drives the system (the demo, a test, the drills),
 * outside the system, so the checker compares the system with what it promised and not with
 * what it believes. An operation that failed without a clear answer (a timeout, a crash) is
 * "maybe": it may or may not have taken effect, and must not have taken effect twice.
 */

/** A person the driver registered (its resident ID is the key). */
export interface LedgerPerson {
  idNumber: string;
  /** Province that was told the registration succeeded (or "maybe" succeeded). */
  registeredAt: string;
  /** The registration was acknowledged; otherwise its outcome is unknown. */
  acknowledged: boolean;
}

export interface LedgerDose {
  idNumber: string;
  doseId: string;
  /** Province where it was given. */
  province: string;
  acknowledged: boolean;
  /** When it was acknowledged with the hub not answering: held by its province alone. */
  heldOnly?: Date;
}

export interface LedgerMigration {
  idNumber: string;
  migrationId: string;
  target: string;
}

export interface LedgerClosure {
  idNumber: string;
  recordId: string;
  acknowledged: boolean;
}

export class Ledger {
  readonly persons = new Map<string, LedgerPerson>();
  readonly doses: LedgerDose[] = [];
  readonly migrations: LedgerMigration[] = [];
  readonly closures: LedgerClosure[] = [];
  /** Other documents a client was told were linked to a person: document number -> person. */
  readonly aliases = new Map<string, string>();

  /** The person (by the number they were first registered under) a document number is. */
  personOf(idNumber: string): string {
    return this.aliases.get(idNumber) ?? idNumber;
  }

  /**
   * A client was told the document `idNumber` was linked to the person registered under
   * `person` (a resident ID after the birth certificate): from now on it is that person.
   */
  linked(idNumber: string, person: string): void {
    this.aliases.set(idNumber, this.personOf(person));
  }

  registered(idNumber: string, province: string, acknowledged: boolean): void {
    const known = this.persons.get(idNumber);
    // An acknowledgement is never taken back by a later "maybe".
    if (known?.acknowledged) return;
    this.persons.set(idNumber, { idNumber, registeredAt: province, acknowledged });
  }

  /**
   * A dose a client asked a province to record. heldOnly: acknowledged while the hub did not
   * answer (reported_to_hub false), so the province alone held it when the client was told.
   */
  dose(
    idNumber: string,
    doseId: string,
    province: string,
    acknowledged: boolean,
    heldOnly = false,
  ): void {
    this.doses.push({
      idNumber: this.personOf(idNumber),
      doseId,
      province,
      acknowledged,
      ...(heldOnly ? { heldOnly: new Date() } : {}),
    });
  }

  migrated(idNumber: string, migrationId: string, target: string): void {
    this.migrations.push({ idNumber: this.personOf(idNumber), migrationId, target });
  }

  closed(idNumber: string, recordId: string, acknowledged: boolean): void {
    this.closures.push({ idNumber: this.personOf(idNumber), recordId, acknowledged });
  }

  /** Operations acknowledged to a client, by kind. */
  counts(): {
    registrations: number;
    doses: number;
    links: number;
    migrations: number;
    closures: number;
  } {
    return {
      registrations: [...this.persons.values()].filter((p) => p.acknowledged).length,
      doses: this.doses.filter((d) => d.acknowledged).length,
      links: this.aliases.size,
      migrations: this.migrations.length,
      closures: this.closures.filter((c) => c.acknowledged).length,
    };
  }
}
