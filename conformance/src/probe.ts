import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { provinceConsumer } from "@evc-interop/runtime";
import type { Kit } from "./kit.js";

/**
 * The bus half of readiness, after the province answers on its control port: one directive the
 * province must take off its durable consumer and answer with a receipt. It is a dose for a
 * record the province has never heard of, at sequence 1: a conforming province refuses it
 * (REJECTED, RECORD_NOT_FOUND) and changes nothing; here any receipt will do, the cases judge
 * the rest. A province that never takes its directives, or never answers them, fails here in
 * one line saying which, within `timeoutMs`, instead of in every case.
 */
export async function probeBus(kit: Kit, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  const d = kit.directive({
    action: {
      case: "appendDose",
      value: {
        $typeName: "evc.directive.v1.AppendDose",
        dose: create(DoseSchema, {
          doseId: `kit-probe-${crypto.randomUUID()}`,
          vaccineCode: "MMR",
          doseNumber: 1,
          administeredAt: timestampFromDate(new Date("2022-01-01T00:00:00Z")),
          administeredProvinceCode: kit.virtual[0],
        }),
      },
    },
  });
  kit.trace(`probe: directive ${d.directiveId} (a dose for a record unknown to the province)`);
  const seq = await kit.deliver(d);
  const { code } = kit.config.province;
  const { natsUrl, stream } = kit.config.kit;
  try {
    await kit.waitConsumed(seq, false, Math.max(1, end - Date.now()));
  } catch {
    throw new Error(
      `no directive taken: the province answers GetFeatures but pulled nothing from its durable consumer ${provinceConsumer(code)} on stream ${stream} at ${natsUrl} within ${timeoutMs} ms; check that it consumes that consumer with its own NATS credential (a province the kit starts gets NATS_URL, EVC_STREAM and EVC_SUBJECT_PREFIX)`,
    );
  }
  const receipts = await kit.waitReceipts(d.directiveId, 1, Math.max(1, end - Date.now()));
  if (receipts.length === 0) {
    throw new Error(
      `no receipt: the province took directive ${d.directiveId} off the bus (stream message ${seq}) but sent no receipt to the kit's hub at ${kit.hub.url} within ${timeoutMs} ms; check that it calls evc.national.v1.DirectiveService/SubmitReceipts at EVC_HUB_URL with its province credential`,
    );
  }
}
