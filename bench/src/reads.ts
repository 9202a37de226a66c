import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { TRIVIAL_LABEL, trivialFigure, withTrivialServer } from "./baselines.js";
import { type Figure, figure, quantile } from "./measure.js";
import { callRounds } from "./settings.js";
import { type BenchProvince, registerPersons, type System } from "./system.js";

/**
 * Status reads at a province, and the trivial-call baseline that bounds them, measured round
 * for round in turn while the hub and the provinces run: measured apart (the baseline before
 * the system was up), the ratio moved with whatever the machine did in between.
 */
export async function readFigures(s: System): Promise<Figure[]> {
  const p = s.provinces[0] as BenchProvince;
  const people = await registerPersons(s, 200);
  const mine = people.filter((x) => x.owner === 0);
  const client = createClient(
    ProvinceService,
    createConnectTransport({ baseUrl: p.url, httpVersion: "2" }),
  );
  const read = async (i: number) => {
    await client.getCertificateStatus({
      certificateNumber: (mine[i % mine.length] as (typeof mine)[number]).certificate,
    });
  };
  const [trivial, reads] = await withTrivialServer((call) =>
    callRounds([
      { label: TRIVIAL_LABEL, call },
      { label: "certificate status reads/s (64 in flight)", call: read },
    ]),
  );
  if (!trivial || !reads) throw new Error("callRounds returned fewer results than callers");
  return [
    trivialFigure(trivial.perSecond),
    figure(
      "status_reads",
      "Certificate status reads/s at a province, Connect over HTTP/2, 64 callers",
      "reads/s",
      reads.perSecond,
      {
        p50_ms: quantile(reads.latencies, 0.5),
        p99_ms: quantile(reads.latencies, 0.99),
      },
    ),
  ];
}
