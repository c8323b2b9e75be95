import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { parseConfig, type Config } from "../src/config.js";
import type { AppContext } from "../src/context.js";
import { startService } from "../src/service.js";
import { waitFor } from "../dev/wait-for.js";
import { createMigratedDatabase } from "../dev/postgres.js";
import type { FakeCommand } from "./fake-server.js";
import type { ProcessMemory } from "./service-process.js";

const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

/** The fake Replicate in a child process. */
export class FakeProcess {
  private seq = 0;
  private constructor(
    private readonly child: ChildProcess,
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<FakeProcess> {
    const child = fork(new URL("./fake-server.ts", import.meta.url), { execArgv: ["--import", "tsx", "--max-old-space-size=8192"] });
    const [ready] = (await once(child, "message")) as [{ baseUrl: string }];
    return new FakeProcess(child, ready.baseUrl);
  }

  /** CPU time the fake has spent so far. */
  cpuMs(): number {
    return processCpuMs(this.child.pid!);
  }

  async send<T = object>(command: FakeCommand): Promise<T> {
    const seq = ++this.seq;
    const reply = new Promise<T>((resolve) => {
      const onMessage = (m: { seq: number }) => {
        if (m.seq !== seq) return;
        this.child.off("message", onMessage);
        resolve(m as T);
      };
      this.child.on("message", onMessage);
    });
    this.child.send({ ...command, seq });
    return reply;
  }

  async stop(): Promise<void> {
    this.child.disconnect();
    await once(this.child, "exit");
  }
}

export interface BenchService {
  config: Config;
  ctx: AppContext;
  /** The environment the service was configured from: a service process started with it works on the same database and queues. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** The service in this process (no HTTP: the producer is called directly) on a fresh, migrated database. */
export async function startBenchService(baseUrl: string, extra: Record<string, string> = {}, workers = true): Promise<BenchService> {
  const database = createMigratedDatabase("rus_bench");
  const env = {
    NODE_ENV: "production",
    DATABASE_URL: database.url,
    REDIS_URL,
    QUEUE_PREFIX: `rus-bench-${randomBytes(4).toString("hex")}`,
    TOKEN_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString("base64")}`,
    API_TOKEN: randomBytes(24).toString("base64url"),
    SUPPORT_TOKEN: randomBytes(24).toString("base64url"),
    REPLICATE_API_BASE_URL: baseUrl,
    REPLICATE_REQUESTS_PER_SECOND: "100000",
    LOG_LEVEL: "warn",
    ...extra,
  };
  const config = parseConfig(env);
  const service = await startService(config, { workers });
  const { ctx } = service;
  return {
    config,
    ctx,
    env,
    async close() {
      await service.stopWorkers();
      const keys = await ctx.redis.keys(`${config.queuePrefix}*`);
      if (keys.length) await ctx.redis.del(...keys);
      await service.close();
      await database.drop();
    },
  };
}

/** Linux counts process and machine CPU time in ticks of 1/100 s (USER_HZ). */
const TICK_MS = 10;

/**
 * The service's own entry point (src/main.ts) in a child process, started with `env` the way a
 * deployment starts it (e.g. ROLE=worker and the image's allocator settings), through
 * bench/service-process.ts, which only reports when it is up and, on request, its memory.
 */
export class ServiceProcess {
  private seq = 0;
  private constructor(private readonly child: ChildProcess) {}

  /** `env` is added to this process's environment, `nodeFlags` to node's; HTTP (probes, /metrics) on a free loopback port. */
  static async start(env: Record<string, string>, nodeFlags: string[] = []): Promise<ServiceProcess> {
    const child = fork(new URL("./service-process.ts", import.meta.url), {
      execArgv: [...nodeFlags, "--expose-gc", "--import", "tsx"],
      env: { ...process.env, HOST: "127.0.0.1", PORT: "0", ...env },
    });
    const exited = once(child, "exit").then(([code]) => {
      throw new Error(`service process exited with ${String(code)} before it was ready`);
    });
    await Promise.race([once(child, "message"), exited]);
    return new ServiceProcess(child);
  }

  /** CPU time (user + system) the process has spent so far, all its threads. */
  cpuMs(): number {
    return processCpuMs(this.child.pid!);
  }

  async memory(): Promise<ProcessMemory> {
    const seq = ++this.seq;
    const reply = new Promise<ProcessMemory>((resolve) => {
      const onMessage = (m: { seq?: number; memory?: ProcessMemory }) => {
        if (m.seq !== seq) return;
        this.child.off("message", onMessage);
        resolve(m.memory!);
      };
      this.child.on("message", onMessage);
    });
    this.child.send({ type: "memory", seq });
    return reply;
  }

  /** SIGTERM, as an orchestrator stops it: in-flight jobs finish, then it exits. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.kill("SIGTERM");
    await exited;
  }
}

/** CPU time (user + system) process `pid` has spent so far, all its threads; 0 once it is gone. */
export function processCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // Fields after "pid (comm) ": state is the first, utime the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** CPU time the whole machine spent busy and idle so far (all cores, from /proc/stat). */
export function machineCpuMs(): { busy: number; idle: number } {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = ticks;
  return { busy: (user + nice + system + irq + softirq + steal) * TICK_MS, idle: (idle + iowait) * TICK_MS };
}

/** Polls fast (5 ms by default) so the measured time is not rounded up by the poll. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 600_000, pollMs = 5): Promise<void> {
  await waitFor(what, check, (ok) => ok, timeoutMs, pollMs);
}

export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await f();
  return { ms: performance.now() - start, value };
}

/** CPU time (user + system) this process spent while `f` ran: the service's cost, the fake being another process. */
export async function withCpu<T>(f: () => Promise<T>): Promise<{ cpuMs: number; value: T }> {
  const before = process.cpuUsage();
  const value = await f();
  const used = process.cpuUsage(before);
  return { cpuMs: (used.user + used.system) / 1000, value };
}

export const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
