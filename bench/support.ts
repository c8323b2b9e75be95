import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { PerformanceObserver } from "node:perf_hooks";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Writable } from "node:stream";
import { Session } from "node:inspector/promises";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import winston from "winston";
import { parseConfig, type Config } from "../src/config.js";
import { logger } from "../src/logger.js";
import type { AppContext } from "../src/context.js";
import { startService } from "../src/service.js";
import { waitFor } from "../dev/wait-for.js";
import { createMigratedDatabase } from "../dev/postgres.js";
import type { FakeCommand } from "./fake-server.js";
import type { ProcessMemory } from "./service-process.js";

const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Sends `message` to a child process with `seq` and resolves with its reply, the message that carries the same `seq`. */
function ask<T>(child: ChildProcess, seq: number, message: object): Promise<T> {
  const reply = new Promise<T>((resolve) => {
    const onMessage = (m: { seq?: number }) => {
      if (m.seq !== seq) return;
      child.off("message", onMessage);
      resolve(m as T);
    };
    child.on("message", onMessage);
  });
  child.send({ ...message, seq });
  return reply;
}

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

  send<T = object>(command: FakeCommand): Promise<T> {
    return ask<T>(this.child, ++this.seq, command);
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
    return (await ask<{ memory: ProcessMemory }>(this.child, ++this.seq, { type: "memory" })).memory;
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

export interface CallCounts {
  redisCommands: number;
  pgQueries: number;
  logLines: number;
}

/**
 * With BENCH_COUNT=1, counts what the process sends while `f` runs: Redis commands (a Lua script is
 * one), pg queries (Prisma's included: it runs on pg) and log lines at LOG_LEVEL=info (what a
 * production process writes; the bench itself runs at warn). Null without it: the wrappers cost CPU.
 */
export async function withCounts<T>(f: () => Promise<T>): Promise<{ counts: CallCounts | null; value: T }> {
  if (!process.env.BENCH_COUNT) return { counts: null, value: await f() };
  const counts: CallCounts = { redisCommands: 0, pgQueries: 0, logLines: 0 };
  const pollsBefore = polls;
  const { sendCommand } = Redis.prototype;
  const { query } = pg.Client.prototype;
  Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<Redis["sendCommand"]>) {
    counts.redisCommands++;
    return sendCommand.apply(this, args);
  };
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    counts.pgQueries++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  const level = logger.level;
  const counter = new winston.transports.Stream({
    level: "info",
    stream: new Writable({
      write(_line, _encoding, next) {
        counts.logLines++;
        next();
      },
    }),
  });
  logger.level = "info";
  const quiet = logger.transports.filter((t) => !t.silent);
  for (const t of quiet) t.silent = true;
  logger.add(counter);
  try {
    const value = await f();
    // The bench's own polls are not the service's work.
    counts.pgQueries -= polls - pollsBefore;
    return { counts, value };
  } finally {
    Redis.prototype.sendCommand = sendCommand;
    pg.Client.prototype.query = query;
    logger.remove(counter);
    logger.level = level;
    for (const t of quiet) t.silent = false;
  }
}

/** Prints what withCounts counted, per unit of work (a sync, a page). */
export function printCounts(what: string, counts: CallCounts | null, per: number, unit: string): void {
  if (!counts) return;
  const each = (n: number) => (n / per).toFixed(2);
  process.stdout.write(
    `${what}: per ${unit}: ${each(counts.redisCommands)} Redis commands, ${each(counts.pgQueries)} pg queries, ${each(counts.logLines)} log lines at info\n`,
  );
}

/** countRows calls so far: withCounts takes the bench's own polls out of the service's figures. */
let polls = 0;

/**
 * A count read with pg directly: polled inside the measured process, so it must cost little (a
 * Prisma count cost ~10× the CPU and showed up as the service's in the profiles).
 */
export async function countRows(ctx: AppContext, text: string, values: unknown[]): Promise<number> {
  polls++;
  return (await ctx.db.pool.query<{ n: number }>({ text: `SELECT count(*)::int AS n FROM ${text}`, values })).rows[0]!.n;
}

/**
 * Waits until `done`, then returns the ms from `since` to the last completion of a run of `connectionIds` at or after it: its
 * sync_completed event's time (the database's clock, set by the statement that completed the run). So a measured phase polls
 * slowly (a poll is CPU in the measured process), and the poll's interval does not round the measured time up.
 */
export async function msToLastCompletion(
  ctx: AppContext,
  connectionIds: string[],
  since: Date,
  done: () => Promise<boolean>,
): Promise<number> {
  await until("runs completed", done, undefined, 50);
  const { rows } = await ctx.db.pool.query<{ last: Date | null }>(
    `SELECT max(occurred_at) AS last FROM integration_events WHERE kind = 'sync_completed' AND occurred_at >= $1 AND connection_id = ANY($2::uuid[])`,
    [since, connectionIds],
  );
  if (!rows[0]?.last) throw new Error("no run completed in the measured phase");
  return rows[0].last.getTime() - since.getTime();
}

/** Polls fast (5 ms by default) for waits whose end is timed by the poll itself. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 600_000, pollMs = 5): Promise<void> {
  await waitFor(what, check, (ok) => ok, timeoutMs, pollMs);
}

/** The middle value (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await f();
  return { ms: performance.now() - start, value };
}

/**
 * CPU time (user + system) this process spent while `f` ran: the service's cost, the fake being another process.
 * With BENCH_CPU_PROF=<dir>, a V8 CPU profile of just that phase is written there as `<name>.cpuprofile`
 * (read it with `npm run profile-top <file>`); its timings then include the profiler's overhead.
 */
export async function withCpu<T>(f: () => Promise<T>, name = "phase"): Promise<{ cpuMs: number; gcMs: number; value: T }> {
  const profile = await startProfile();
  // The main thread's collection pauses, the part of that CPU that is the garbage collector's (its concurrent marking is not in it).
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  gc.observe({ entryTypes: ["gc"] });
  const before = process.cpuUsage();
  const value = await f();
  const used = process.cpuUsage(before);
  gc.disconnect();
  await profile?.stop(name);
  return { cpuMs: (used.user + used.system) / 1000, gcMs, value };
}

async function startProfile(): Promise<{ stop(name: string): Promise<void> } | null> {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return null;
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  // 100 µs: fine enough for the per-page costs (the default 1 ms misses most of them).
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  return {
    async stop(name) {
      const { profile } = await session.post("Profiler.stop");
      session.disconnect();
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    },
  };
}

export const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
