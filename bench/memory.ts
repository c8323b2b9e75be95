import * as producer from "../src/producer.js";
import { FakeProcess, startService, until } from "./support.js";

export interface MemoryResult {
  rssAfterSmallMb: number;
  rssAfterLargeMb: number;
  small: number;
  large: number;
}

const rssMb = () => {
  (globalThis as { gc?: () => void }).gc?.(); // run with --expose-gc: measure what is retained
  return process.memoryUsage().rss / 2 ** 20;
};

/**
 * RSS of the service process after 10k predictions, then after 1M (the rest as 10 connections of
 * 99k synced side by side, so the run takes minutes, not an hour). Growth would mean something keeps pages.
 */
export async function memory(fake: FakeProcess, small = 10_000, large = 1_000_000, connections = 10): Promise<MemoryResult> {
  const perConnection = (large - small) / connections;
  for (let i = 0; i <= connections; i++) {
    await fake.send({ type: "account", token: `r8_benchMemory${i}`, count: i === 0 ? small : perConnection, seed: 100 + i, days: 30 });
  }
  const service = await startService(fake.baseUrl);
  const { ctx } = service;
  try {
    const synced = (ids: string[]) => async () =>
      (await ctx.db.connection.count({ where: { id: { in: ids }, lastSyncedAt: { not: null } } })) === ids.length;
    const first = [(await producer.connect(ctx, { workspaceId: "memory", token: "r8_benchMemory0" })).id];
    await until("first 10k", synced(first));
    const rssAfterSmallMb = rssMb();
    const rest: string[] = [];
    for (let i = 1; i < connections; i++)
      rest.push((await producer.connect(ctx, { workspaceId: "memory", token: `r8_benchMemory${i}` })).id);
    await until("the rest", synced(rest), 3_600_000);
    const total = await ctx.db.predictionRecord.count();
    return { rssAfterSmallMb, rssAfterLargeMb: rssMb(), small, large: total };
  } finally {
    await service.close();
  }
}
