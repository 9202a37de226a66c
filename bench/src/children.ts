import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

/** The bench's child processes (provinces, servers of its parts) still running. */
const children = new Set<ChildProcess>();
let stopsChildren = false;

/**
 * Spawns a child of the bench; if the bench is stopped by a signal, its children are stopped
 * with it instead of being left running.
 */
export function spawnChild(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  children.add(child);
  child.once("exit", () => children.delete(child));
  if (!stopsChildren) {
    stopsChildren = true;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        killChildren("SIGTERM");
        process.exit(signal === "SIGINT" ? 130 : 143);
      });
    }
  }
  return child;
}

/** Resolves once `child` has exited, at once if it already has. */
export function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Throws if `child` has exited: a wait for something only a live child can do ends at once. */
export function mustBeRunning(child: ChildProcess, what: string): void {
  if (child.exitCode !== null || child.signalCode !== null)
    throw new Error(
      `bench: ${what} exited (${child.exitCode ?? child.signalCode}) before it was ready; its error is above`,
    );
}

/** Stops `child` (SIGTERM, then SIGKILL after `graceMs`) and waits for it to exit. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  const gone = exitOf(child);
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
}

/** Signals every child still running (a bench that fails or is stopped leaves none behind). */
export function killChildren(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const c of children) c.kill(signal);
}
