import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/**
 * A throwaway redis-server on its own port and directory, with AOF on (as production Redis for
 * BullMQ must be), that a test may kill and start again. The machine's own Redis is never touched.
 */
export class ThrowawayRedis {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), "rus-redis-"));
  private child: ChildProcess | null = null;

  constructor(readonly port: number) {}

  static async create(): Promise<ThrowawayRedis> {
    const probe = net.createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    return new ThrowawayRedis(port);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--dir", this.dir];
    this.child = spawn("redis-server", [...args, "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"], {
      stdio: "ignore",
    });
    const deadline = Date.now() + 10_000;
    while (!(await this.answers())) {
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL, like a crashed host: whatever AOF has is what comes back. */
  async kill9(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    child.kill("SIGKILL");
    await once(child, "exit");
  }

  /** Also loses the data: the next start is an empty Redis. */
  async wipe(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir);
  }

  async destroy(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, "127.0.0.1");
      socket.once("connect", () => {
        socket.write("PING\r\n");
        socket.once("data", (d) => {
          socket.destroy();
          resolve(d.toString().startsWith("+PONG"));
        });
      });
      socket.once("error", () => resolve(false));
    });
  }
}
