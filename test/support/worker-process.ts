import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** The service as a separate OS process (ROLE=worker), so tests can kill -9 it like a crashed pod. */
export class WorkerProcess {
  /** Every line the process wrote (its JSON logs), kept after it exits. */
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  constructor(env: Record<string, string>) {
    const { NODE_OPTIONS: _jestVmFlags, ...inherited } = process.env;
    this.child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      // NODE_ENV=production: the console transport is on, and no development secrets are generated.
      env: { ...inherited, LOG_LEVEL: "info", ...env, ROLE: "worker", NODE_ENV: "production", PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) createInterface({ input: stream }).on("line", (l) => this.lines.push(l));
    this.exited = once(this.child, "exit").then(() => undefined);
  }

  /** Resolves once the workers are taking jobs. */
  async ready(timeoutMs = 30_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.some((l) => l.includes('"service started"'))) {
      if (this.child.exitCode !== null) throw new Error(`worker exited with ${this.child.exitCode}:\n${this.lines.join("\n")}`);
      if (Date.now() > deadline) throw new Error(`worker not ready after ${timeoutMs} ms:\n${this.lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this;
  }

  /** SIGKILL: no shutdown hook runs, locks are left to expire, transactions are cut. */
  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM and wait for the graceful shutdown. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    await this.exited;
  }
}
