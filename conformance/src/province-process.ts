import { type ChildProcess, spawn } from "node:child_process";

/**
 * The vendor's province process, when the kit starts it (province.start_command): its own
 * process group, so a stop reaches whatever the command started, however the process dies (an
 * exit code, or a signal's default action, as any Go, Python or C program killed by SIGTERM).
 */
export class ProvinceProcess {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  /** How the process ended, once it has. */
  end: string | undefined;

  constructor(command: string, env: NodeJS.ProcessEnv) {
    this.child = spawn("sh", ["-c", command], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
      detached: true,
    });
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => {
        this.end = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        resolve();
      }),
    );
  }

  /** Signals the process group; one that is already gone is not an error. */
  private signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (!pid) return;
    try {
      process.kill(-pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }

  /** Kills it abruptly (a crash, for the resilience cases) and waits until it is gone. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.signal("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!gone) await this.kill();
  }
}

/** Runs province.restart_command to completion. */
export function runRestartCommand(command: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn("sh", ["-c", command], { stdio: "inherit", env });
    p.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`restart_command exited with ${code}`)),
    );
  });
}
