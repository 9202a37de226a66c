// Module hooks of the slowed build (see slowed-build.mjs): the built snapshot service is
// rewritten as it is loaded; every other module loads as built.
const TARGET = "/national/dist/api/snapshot-service.js";
const SLOW =
  "{ const end = performance.now() + page.entries.length * 0.05; while (performance.now() < end); } yield page;";

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!url.endsWith(TARGET)) return result;
  const source = String(result.source);
  const slowed = source.replace("yield page;", SLOW);
  if (slowed === source) throw new Error(`slowed build: no "yield page;" in ${url} any more`);
  return { ...result, source: slowed };
}
