/** Reading configuration from the environment: typed values and errors that name the variable. */

export class ConfigError extends Error {}

/** `{ [key]: value }` if value is defined, else `{}` (for optional config fields). */
export function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };
}

/** A non-negative integer from the environment, or `fallback` when unset. */
export function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

export function oneOf<T extends string>(
  env: NodeJS.ProcessEnv,
  name: string,
  values: readonly T[],
  fallback: T,
): T {
  const raw = env[name];
  if (raw === undefined) return fallback;
  if (!(values as readonly string[]).includes(raw)) {
    throw new ConfigError(
      `${name} must be one of ${values.map((v) => `"${v}"`).join(", ")}, got "${raw}"`,
    );
  }
  return raw as T;
}

export function hostPort(raw: string, name: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(raw);
  if (!m?.[1] || !m[2]) throw new ConfigError(`${name} must be host:port, got "${raw}"`);
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
}
