import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { RecordContentsSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { type Directive, DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { newDose, newIdentity } from "./harness.js";

/** Tests only: directives as the hub would send them, for a store under test. */

/** Activation of a new record (sequence 1) migrated in from 110000, with one dose. */
export function activateDirective(province: string, name = "Test Child"): Directive {
  const recordId = randomUUID();
  return create(DirectiveSchema, {
    directiveId: randomUUID(),
    targetProvinceCode: province,
    correlationId: randomUUID(),
    causationEventId: randomUUID(),
    issuedAt: timestampNow(),
    recordId,
    recordSequence: 1n,
    attempt: 1,
    streamVersion: 3n,
    action: {
      case: "activateMigratedRecord",
      value: {
        migrationId: randomUUID(),
        sourceProvinceCode: "110000",
        record: create(RecordContentsSchema, {
          recordId,
          identity: newIdentity(name),
          doses: [newDose("110000")],
        }),
      },
    },
  });
}

/** The next directive of the same record, with another action. */
export function nextDirective(
  of: Directive,
  sequence: bigint,
  action: MessageInitShape<typeof DirectiveSchema>["action"],
): Directive {
  return create(DirectiveSchema, {
    directiveId: randomUUID(),
    targetProvinceCode: of.targetProvinceCode,
    correlationId: randomUUID(),
    causationEventId: randomUUID(),
    issuedAt: timestampNow(),
    recordId: of.recordId,
    recordSequence: sequence,
    attempt: 1,
    streamVersion: of.streamVersion + sequence,
    action,
  });
}
