import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Identity, IdentitySchema, IdType, Sex } from "../src/evc/common/v1/identity_pb.js";
import { type Dose, DoseSchema } from "../src/evc/common/v1/record_pb.js";

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = "10X98765432";

/** ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID. */
export function residentIdCheck(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * (WEIGHTS[i] ?? 0);
  return CHECK[sum % 11] ?? "";
}

/** A valid resident ID built from a 6-digit area code, a birth date (YYYYMMDD) and a serial. */
export function residentId(area = "110101", birth = "20200115", serial = "123"): string {
  const first17 = `${area}${birth}${serial}`;
  return first17 + residentIdCheck(first17);
}

/** A valid identity; override any field. */
export function identity(overrides: MessageInitShape<typeof IdentitySchema> = {}): Identity {
  return create(IdentitySchema, {
    idType: IdType.RESIDENT_ID,
    idNumber: residentId(),
    name: "Li Xiaoming",
    birthDate: timestampFromDate(new Date("2020-01-15T00:00:00Z")),
    sex: Sex.MALE,
    ...overrides,
  });
}

/** A valid dose; override any field. */
export function dose(overrides: MessageInitShape<typeof DoseSchema> = {}): Dose {
  return create(DoseSchema, {
    doseId: "dose-0001",
    vaccineCode: "HepB",
    doseNumber: 1,
    administeredAt: timestampFromDate(new Date("2020-01-15T08:00:00Z")),
    administeredProvinceCode: "110000",
    ...overrides,
  });
}
