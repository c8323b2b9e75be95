import * as producer from "../src/producer.js";
import { parseCheckpoint } from "../src/domain/checkpoint.js";
import { FakeProcess, startBenchService, until } from "./support.js";

export interface MemoryResult {
  rssAfterSmallMb: number;
  rssAfterLargeMb: number;
  heapAfterSmallMb: number;
  heapAfterLargeMb: number;
  small: number;
  large: number;
}

const memoryMb = () => {
  (globalThis as { gc?: () => void }).gc?.(); // run with --expose-gc: measure what is retained
  const { rss, heapUsed } = process.memoryUsage();
  return { rss: rss / 2 ** 20, heap: heapUsed / 2 ** 20 };
};

/**
 * RSS of the service process once 10k predictions are backfilled and again after 1M, in one run of
 * 10 connections × 100k synced side by side, so both readings are taken under the same load.
 * Growth between them would mean something keeps pages or predictions.
 */
export async function memory(fake: FakeProcess, small = 10_000, connections = 10, perConnection = 100_000): Promise<MemoryResult> {
  for (let i = 0; i < connections; i++) {
    await fake.send({ type: "account", token: `r8_benchMemory${i}`, count: perConnection, seed: 100 + i, days: 30 });
  }
  const service = await startBenchService(fake.baseUrl);
  const { ctx } = service;
  try {
    const ids: string[] = [];
    for (let i = 0; i < connections; i++)
      ids.push((await producer.connect(ctx, { workspaceId: "memory", token: `r8_benchMemory${i}` })).id);
    const progress = async () => {
      const rows = await ctx.db.connection.findMany({ where: { id: { in: ids } }, select: { syncState: true, lastSyncedAt: true } });
      return {
        seen: rows.reduce((n, r) => n + (r.lastSyncedAt ? perConnection : (parseCheckpoint(r.syncState)?.predictionsSeen ?? 0)), 0),
        done: rows.every((r) => r.lastSyncedAt),
      };
    };
    await until("first 10k", async () => (await progress()).seen >= small);
    const afterSmall = memoryMb();
    await until("1M", async () => (await progress()).done, 3_600_000);
    const afterLarge = memoryMb();
    return {
      rssAfterSmallMb: afterSmall.rss,
      rssAfterLargeMb: afterLarge.rss,
      heapAfterSmallMb: afterSmall.heap,
      heapAfterLargeMb: afterLarge.heap,
      small,
      large: await ctx.db.predictionRecord.count(),
    };
  } finally {
    await service.close();
  }
}
