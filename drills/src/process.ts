import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { connect as tcpConnect } from "node:net";

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Every process started and not yet known to have exited, for killAll. */
const live = new Set<ChildProcess>();

/** SIGKILLs every process the drills started (a second Ctrl-C). */
export function killAll(): void {
  for (const child of live) child.kill("SIGKILL");
}

/**
 * One process of the drill's system (nats-server, the hub, a province): started on a fixed
 * port, killed with SIGKILL at the drill's moment, started again on the same port and store.
 * Its output goes to a log file of its own.
 */
export class Supervised {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: WriteStream;
  /** Starts, including restarts after a kill. */
  starts = 0;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    readonly port: number,
    logFile: string,
  ) {
    this.log = createWriteStream(logFile, { flags: "a" });
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** Starts the process and waits until its port answers (it is restarted if it dies first). */
  async start(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) this.spawn();
      if (await answers(this.port)) return;
      if (Date.now() > end) throw new Error(`${this.name} did not listen on ${this.port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private spawn(): void {
    this.starts += 1;
    this.log.write(`\n--- start ${this.starts} of ${this.name} at ${new Date().toISOString()}\n`);
    const child = spawn(this.command, this.args, {
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    live.add(child);
    this.exited = new Promise((resolve) =>
      child.once("exit", () => {
        live.delete(child);
        resolve();
      }),
    );
    this.child = child;
  }

  /** kill -9: no shutdown, no flush. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** A graceful stop (SIGTERM), then SIGKILL if it does not end in time. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.running) {
      this.child?.kill("SIGTERM");
      const timer = setTimeout(() => this.child?.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}
