import { Queue, Worker } from "bullmq";
import { randomBytes } from "node:crypto";

import type { AppContext } from "../src/context.js";
import * as producer from "../src/producer.js";
import {
  FakeProcess,
  countRows,
  msToLastCompletion,
  median,
  printCounts,
  startBenchService,
  timed,
  until,
  withCounts,
  withCpu,
} from "./support.js";

export interface FleetResult {
  connections: number;
  concurrency: number;
  /** Medians of the measured ticks, and each tick's figures (this machine's spread between ticks is tens of percent). */
  syncsPerSecond: number;
  noopJobsPerSecond: number;
  jobsPerSync: number;
  /** CPU of the service process per connection-sync over a measured tick. */
  cpuMsPerSync: number;
  /** Of that CPU, the main thread's collection pauses. */
  gcMsPerSync: number;
  ticks: { syncsPerSecond: number; cpuMsPerSync: number; gcMsPerSync: number }[];
}

/** Measured ticks per run, after the connects' first syncs: the table gives their medians. */
const MEASURED_TICKS = 3;

/** BullMQ's own ceiling: no-op jobs through one worker at the same concurrency and Redis. */
async function noopThroughput(redisUrl: string, concurrency: number, jobs: number): Promise<number> {
  const prefix = `rus-bench-noop-${randomBytes(4).toString("hex")}`;
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const queue = new Queue("noop", { connection, prefix });
  await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: "noop", data: { i }, opts: { removeOnComplete: true } })));
  let done = 0;
  const { ms } = await timed(
    () =>
      new Promise<void>((resolve) => {
        const worker = new Worker("noop", async () => undefined, { connection, prefix, concurrency });
        worker.on("completed", () => {
          if (++done === jobs) void worker.close().then(resolve);
        });
      }),
  );
  await queue.obliterate({ force: true });
  await queue.close();
  return (jobs * 1000) / ms;
}

/** Sync-queue jobs (ticks and slices) this process has finished, from its job-duration histogram. */
async function syncJobsRun(ctx: AppContext): Promise<number> {
  const { values } = await ctx.metrics.jobDuration.get();
  return values.filter((v) => v.metricName?.endsWith("_count") && v.labels.queue === "sync").reduce((n, v) => n + v.value, 0);
}

/**
 * 1,000 connected connections, each with one new page: every connection gets a tick at once and the
 * clock stops when the last one has finished its run (its tick reads the new page and completes the run).
 */
export async function fleet(fake: FakeProcess, connections = 1000): Promise<FleetResult> {
  await fake.send({ type: "accounts", tokenPrefix: "r8_benchFleet", accounts: connections, perAccount: 60 });
  const service = await startBenchService(fake.baseUrl);
  const { ctx, config } = service;
  try {
    const ids = await connectFleet(ctx, "r8_benchFleet", connections);
    const jobsBefore = await syncJobsRun(ctx);
    const ticks: FleetResult["ticks"] = [];
    for (let i = 1; i <= MEASURED_TICKS; i++) {
      const {
        counts,
        value: { cpuMs, gcMs, value: ms },
      } = await withCounts(() => withCpu(() => tickFleet(ctx, ids), `fleet-${i}`));
      printCounts(`fleet tick ${i}`, counts, connections, "sync");
      ticks.push({ syncsPerSecond: (connections * 1000) / ms, cpuMsPerSync: cpuMs / connections, gcMsPerSync: gcMs / connections });
    }
    // A job's "completed" event (what the histogram counts) may come just after its run was saved.
    const expected = connections * MEASURED_TICKS;
    await until("jobs counted", async () => (await syncJobsRun(ctx)) - jobsBefore >= expected, 10_000);
    const jobs = (await syncJobsRun(ctx)) - jobsBefore;
    const noop = await noopThroughput(config.redisUrl, config.sync.concurrency, connections * 2);
    return {
      connections,
      concurrency: config.sync.concurrency,
      syncsPerSecond: median(ticks.map((t) => t.syncsPerSecond)),
      noopJobsPerSecond: noop,
      jobsPerSync: Math.round((jobs / expected) * 100) / 100,
      cpuMsPerSync: median(ticks.map((t) => t.cpuMsPerSync)),
      gcMsPerSync: median(ticks.map((t) => t.gcMsPerSync)),
      ticks,
    };
  } finally {
    await service.close();
  }
}

/** Connects the fake's accounts `tokenPrefix`0… (one connection each) and waits until each has synced once. */
export async function connectFleet(ctx: AppContext, tokenPrefix: string, connections: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < connections; i++) ids.push((await producer.connect(ctx, { workspaceId: "fleet", token: `${tokenPrefix}${i}` })).id);
  const synced = () => ctx.db.connection.count({ where: { lastSyncedAt: { not: null } } });
  await until("first syncs", async () => (await synced()) === connections);
  return ids;
}

/**
 * A tick for every connection at once; returns once each has finished a run started after the ticks were sent, with the ms
 * from sending them to the last run's completion.
 */
export async function tickFleet(ctx: AppContext, ids: string[]): Promise<number> {
  const start = new Date();
  await Promise.all(ids.map((id) => ctx.queues.enqueue("tick", { connectionId: id })));
  const done = async () => (await countRows(ctx, "connections WHERE last_synced_at >= $1", [start])) === ids.length;
  return msToLastCompletion(ctx, ids, start, done);
}
