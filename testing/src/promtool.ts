import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";

/**
 * Alert rules judged by Prometheus's own evaluator: `promtool test rules`, fed what a hub really
 * exposed. A test creates an alert's condition on a real hub, scrapes its /metrics, and asks
 * whether Prometheus, seeing those samples for the minutes that follow, fires the alert.
 */

/** One scrape of /metrics and how many minutes (one sample a minute) it stands for. */
export interface Scrape {
  text: string;
  minutes: number;
  /**
   * Series that grow by this much a minute over the scrape's minutes (a gauge of an age keeps
   * growing while nothing changes: extrapolated, not made up).
   */
  growPerMinute?: Record<string, number>;
}

/** `name{labels}` → value, for every sample line of a Prometheus text exposition. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The input series of a promtool test: each scrape's samples held (or grown) for its minutes. */
export function inputSeries(scrapes: Scrape[]): { series: string; values: string }[] {
  const parsed = scrapes.map((s) => samples(s.text));
  const names = new Set(parsed.flatMap((p) => [...p.keys()]));
  return [...names].map((series) => {
    const metric = series.replace(/\{.*$/, "");
    const values = scrapes.map((s, i) => {
      const v = parsed[i]?.get(series);
      if (v === undefined) return `_x${s.minutes}`;
      const grow = s.growPerMinute?.[metric] ?? 0;
      return `${v}${grow >= 0 ? "+" : "-"}${Math.abs(grow)}x${s.minutes - 1}`;
    });
    return { series, values: values.join(" ") };
  });
}

interface Rule {
  alert?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** An alert's labels and annotations as Prometheus renders them for a series' labels. */
function expected(rule: Rule, labels: Record<string, string>) {
  const render = (t: string) =>
    t.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? "");
  return {
    exp_labels: { ...labels, ...rule.labels },
    exp_annotations: Object.fromEntries(
      Object.entries(rule.annotations ?? {}).map(([k, v]) => [k, render(v)]),
    ),
  };
}

/**
 * Runs `promtool test rules`: given the scrapes, alert `alert` of `rulesFile` must be firing at
 * `atMinute` for exactly the label sets `firing` (none: it must not fire). Returns promtool's
 * verdict and output.
 */
export function promtoolJudges(
  rulesFile: string,
  scrapes: Scrape[],
  alert: string,
  firing: Record<string, string>[],
  atMinute: number,
): { ok: boolean; output: string } {
  const groups = (parse(readFileSync(rulesFile, "utf8")) as { groups: { rules: Rule[] }[] }).groups;
  const rule = groups.flatMap((g) => g.rules).find((r) => r.alert === alert);
  if (!rule) throw new Error(`${rulesFile} has no alert ${alert}`);
  const dir = mkdtempSync(join(tmpdir(), "evc-promtool-"));
  try {
    const file = join(dir, "test.json"); // JSON is YAML
    writeFileSync(
      file,
      JSON.stringify({
        rule_files: [rulesFile],
        evaluation_interval: "1m",
        tests: [
          {
            interval: "1m",
            input_series: inputSeries(scrapes),
            alert_rule_test: [
              {
                eval_time: `${atMinute}m`,
                alertname: alert,
                exp_alerts: firing.map((labels) => expected(rule, labels)),
              },
            ],
          },
        ],
      }),
    );
    const run = spawnSync("promtool", ["test", "rules", file], { encoding: "utf8" });
    if (run.error) {
      throw new Error(
        `promtool: ${run.error.message} (Debian: apt-get install prometheus; .ci/run does)`,
      );
    }
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
