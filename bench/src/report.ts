import type { Figure } from "./measure.js";

/** The report: figures as a Markdown table. */

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(n >= 10 ? 1 : 2);
}

export function markdown(figures: Figure[]): string {
  const lines = [
    "| figure | median | min | max | unit | vs baseline | target |",
    "|---|---:|---:|---:|---|---:|---|",
  ];
  for (const f of figures) {
    const extra = Object.entries(f.extra)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(", ");
    lines.push(
      `| ${f.name}${extra ? ` (${extra})` : ""} | ${fmt(f.median)} | ${fmt(f.min)} | ${fmt(f.max)} | ${f.unit} | ${
        f.ratio !== undefined ? `${(f.ratio * 100).toFixed(1)}% of ${f.baseline}` : ""
      } | ${f.target ? `${f.target} ${f.met ? "✓" : "✗"}` : ""} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}
