import { buildServer } from "../src/api/server.js";
import { utcDay } from "../src/domain/calendar.js";
import { QueryTimeoutError } from "../src/errors.js";
import * as producer from "../src/producer.js";
import { createConnection } from "../src/repositories/connections.js";
import { predictionPageSchema } from "../src/replicate/schemas.js";
import { applyPages } from "../src/sync/engine.js";
import { beginRun } from "../src/sync/run.js";
import { generatePredictions } from "../dev/predictions.js";
import { seedUsage } from "../dev/usage-seed.js";
import { median, startBenchService, timed, until } from "./support.js";

export interface UsageQueryResult {
  connections: number;
  days: number;
  dailyRows: number;
  /** Median of the usage queries run back to back while the "during" figures were taken, answered or stopped. */
  queryMs: number;
  queries: number;
  /** Of those, how many were stopped at USAGE_QUERY_TIMEOUT_MS (a 504 on the API). */
  timedOut: number;
  timeoutMs: number;
  writeAloneMs: number;
  writeDuringMs: number;
  healthAloneMs: number;
  healthDuringMs: number;
}

const DAY = 86_400_000;

/**
 * The worst range the API allows (MAX_USAGE_DAYS) over a workspace of `connections` connections, each
 * with a daily row and a dedicated deployment every day of it, grouped by date (the answer stays
 * small, every row is read and priced). Sync writes (one 100-prediction page through the fenced
 * write) and /healthz are timed alone, then while such queries run back to back.
 */
export async function usageQuery(connections = 1000, samples = 20): Promise<UsageQueryResult> {
  const service = await startBenchService("http://127.0.0.1:9/v1", {}, false);
  const { db, vault, config } = service.ctx;
  const app = await buildServer(service.ctx);
  const origin = await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const to = utcDay(new Date());
    const from = utcDay(new Date(Date.now() - (producer.MAX_USAGE_DAYS - 1) * DAY));
    await seedUsage(db.pool, { workspaceId: "bench-usage", connections, from, to, rowsPerDay: 1, deployments: true, covered: true });
    await db.pool.query("ANALYZE");

    const writer = await createConnection(db, vault, "bench-writer", "r8_benchUsageWriter");
    await db.connection.update({ where: { id: writer.id }, data: { status: "connected" } });
    let { checkpoint } = (await beginRun(db, writer.id, config.sync))!;
    const windowId = Object.keys(checkpoint.windows)[0]!;
    const generated = generatePredictions({ count: (2 * samples + 5) * 100, days: 30, seed: 7 });
    const all = predictionPageSchema.parse({
      next: null,
      results: generated.sort((a, b) => (a.created_at < b.created_at ? 1 : -1)),
    }).results;
    let written = 0;
    const write = async () => {
      const predictions = all.slice(written * 100, ++written * 100);
      const r = await timed(() =>
        applyPages(db, writer.id, checkpoint, windowId, [{ next: "more", results: predictions, rejected: [] }], { parallelism: 1 }),
      );
      if (!r.value.applied) throw new Error("usage-query bench: a page was not applied");
      checkpoint = r.value.checkpoint;
      return r.ms;
    };
    const health = async () => (await timed(() => fetch(`${origin}/healthz`).then((r) => r.text()))).ms;
    const sample = async (n: number) => {
      const [w, h] = [[] as number[], [] as number[]];
      for (let i = 0; i < n; i++) {
        w.push(await write());
        h.push(await health());
      }
      return { write: median(w), health: median(h) };
    };

    await sample(5); // warms connections and plans
    const alone = await sample(samples);
    let running = true;
    const queryTimes: number[] = [];
    const query = { workspaceId: "bench-usage", from, to, groupBy: ["date" as const], fillZeros: true };
    let timedOut = 0;
    const run = () =>
      producer.queryUsage(service.ctx, query).then(
        () => undefined,
        (err: unknown) => {
          if (!(err instanceof QueryTimeoutError)) throw err;
          timedOut++;
        },
      );
    const loop = (async () => {
      while (running) queryTimes.push((await timed(run)).ms);
    })();
    await until("a usage query running", async () => {
      const { rows } = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'WITH releases AS (%'`);
      return rows.length > 0;
    });
    const during = await sample(samples);
    running = false;
    await loop;
    return {
      connections,
      days: producer.MAX_USAGE_DAYS,
      dailyRows: connections * producer.MAX_USAGE_DAYS,
      queryMs: median(queryTimes),
      queries: queryTimes.length,
      timedOut,
      timeoutMs: config.usage.timeoutMs,
      writeAloneMs: alone.write,
      writeDuringMs: during.write,
      healthAloneMs: alone.health,
      healthDuringMs: during.health,
    };
  } finally {
    await app.close();
    await service.close();
  }
}
