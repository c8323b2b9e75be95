import * as producer from "../src/producer.js";
import { parseCheckpoint } from "../src/domain/checkpoint.js";
import type { ProcessMemory } from "./service-process.js";
import type { Runtime } from "./shipped.js";
import { FakeProcess, ServiceProcess, startBenchService, until } from "./support.js";

export interface MemoryResult {
  /** What the measured process ran with beyond the bench's own configuration (allocator, node flags). */
  settings: Partial<Runtime>;
  /** CPU the process spent between the two readings. */
  cpuMs: number;
  afterSmall: ProcessMemory;
  afterLarge: ProcessMemory;
  small: number;
  large: number;
}

/** Each run's accounts are new ones in the fake. */
let runs = 0;

/**
 * RSS of a worker process (ROLE=worker: the service's own entry point in a child process, started
 * with `settings`' node flags and environment) once 10k predictions are backfilled and again after
 * 1M, in one run of 10 connections × 100k synced side by side, so both readings are taken under the
 * same load. Growth between them would mean something keeps pages or predictions, or memory the
 * process took at its peak is not given back.
 */
export async function memory(
  fake: FakeProcess,
  settings: Partial<Runtime> = {},
  small = 10_000,
  connections = 10,
  perConnection = 100_000,
): Promise<MemoryResult> {
  const round = (runs += 1);
  const tokens = Array.from({ length: connections }, (_, i) => `r8_benchMemory${round}x${i}`);
  for (const [i, token] of tokens.entries()) await fake.send({ type: "account", token, count: perConnection, seed: 100 + i, days: 30 });
  const service = await startBenchService(fake.baseUrl, {}, false);
  const { ctx } = service;
  const worker = await ServiceProcess.start({ ...service.env, ROLE: "worker", ...settings.env }, settings.nodeFlags);
  try {
    const ids: string[] = [];
    for (const token of tokens) ids.push((await producer.connect(ctx, { workspaceId: "memory", token })).id);
    const progress = async () => {
      const rows = await ctx.db.connection.findMany({ where: { id: { in: ids } }, select: { syncState: true, lastSyncedAt: true } });
      return {
        seen: rows.reduce((n, r) => n + (r.lastSyncedAt ? perConnection : (parseCheckpoint(r.syncState)?.predictionsSeen ?? 0)), 0),
        done: rows.every((r) => r.lastSyncedAt),
      };
    };
    await until("first 10k", async () => (await progress()).seen >= small);
    const afterSmall = await worker.memory();
    const cpuAtSmall = worker.cpuMs();
    await until("1M", async () => (await progress()).done, 3_600_000);
    const afterLarge = await worker.memory();
    const cpuMs = worker.cpuMs() - cpuAtSmall;
    return { settings, cpuMs, afterSmall, afterLarge, small, large: await ctx.db.predictionRecord.count() };
  } finally {
    await worker.stop();
    await service.close();
  }
}
