import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Identity,
  IdentitySchema,
  IdType,
  Sex,
} from "@evc-interop/gen/evc/common/v1/identity_pb";
import { residentId } from "./resident-id.js";

/**
 * A made-up child with a valid, random resident ID (never a real person's: the kit, the demo,
 * the drills and the tests use these).
 */
export function syntheticIdentity(name = "Test Child"): Identity {
  let digits = "1";
  for (let i = 0; i < 16; i++) digits += Math.floor(Math.random() * 10).toString();
  return create(IdentitySchema, {
    idType: IdType.RESIDENT_ID,
    idNumber: residentId(digits),
    name,
    birthDate: timestampFromDate(new Date("2020-01-15T00:00:00Z")),
    sex: Sex.FEMALE,
  });
}
