import { type Logger, pino } from "pino";

/** Structured JSON logs on stdout; level from EVC_LOG_LEVEL (default info). */
export function createLogger(name: string, level = process.env.EVC_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level, base: { component: name } });
}

export type { Logger };
