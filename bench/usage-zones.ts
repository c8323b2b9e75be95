import { buildServer } from "../src/api/server.js";
import type { Db } from "../src/db/client.js";
import { createConnection } from "../src/repositories/connections.js";
import { median, startBenchService, timed } from "./support.js";

export interface UsageZonesResult {
  connections: number;
  days: number;
  bucketRows: number;
  rows: number;
  /** Median ms of GET /v1/usage per zone, measured alternately. */
  medianMs: Record<string, number>;
  ratio: number;
}

/** Quarter hours of usage for `ids` over the `days` before today, as described at usageQuery. */
export async function seedUsage(db: Db, ids: string[], days: number, density: number): Promise<void> {
  await db.$executeRawUnsafe(
    `INSERT INTO usage_buckets (connection_id, workspace_id, bucket_start, model, deployment, source, predictions, succeeded, failed,
                                canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions,
                                billable_seconds, input_tokens, output_tokens)
     SELECT c, 'bench-ws', date_trunc('day', now()) - d * interval '1 day' + q * interval '15 minutes', m.model, '', s.source,
            n, n - 1, 1, 0, 0, 0, 0, n * 1.5, n * 1.6, n, n * 1.5, 0, 0
     FROM unnest($1::uuid[]) c, generate_series(1, $2::int) d, generate_series(0, 95) q,
          (VALUES ('stability-ai/sdxl'), ('black-forest-labs/flux-schnell'), ('meta/meta-llama-3-70b-instruct'), ('openai/whisper')) m(model),
          (VALUES ('api'), ('web')) s(source),
          LATERAL (SELECT 2 + (random() * 8)::int AS n) k
     WHERE random() < $3::float8`,
    ids,
    days,
    density,
  );
}

/**
 * GET /v1/usage over HTTP for a workspace of `connections` × `days` of quarter-hour usage, grouped by
 * date and model, in a zone with DST (Los Angeles) and in Kathmandu (+05:45) against the same query on
 * UTC days, alternating request by request so all see the same machine. The usage is written directly
 * (a sync of this much would take the bench's time, and the query does not care how rows got there):
 * per connection and day, each of 4 models × 2 sources has a quarter hour with usage with probability `density`.
 */
export async function usageZones(connections = 50, days = 90, density = 0.25, rounds = 12): Promise<UsageZonesResult> {
  const service = await startBenchService("http://127.0.0.1:9/v1", {}, false);
  const { db, vault } = service.ctx;
  const app = await buildServer(service.ctx);
  try {
    const ids: string[] = [];
    for (let i = 0; i < connections; i++) ids.push((await createConnection(db, vault, "bench-ws", `r8_benchUsageQuery${i}`)).id);
    // Finished runs over the whole span, so coverage and finality have their real work to do.
    await db.$executeRawUnsafe(
      `UPDATE connections SET status = 'connected', last_synced_at = now(), high_water_mark = now() WHERE workspace_id = 'bench-ws'`,
    );
    await seedUsage(db, ids, days, density);
    await db.$executeRawUnsafe(`ANALYZE usage_buckets`);
    const [count] = await db.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM usage_buckets`);
    const bucketRows = count!.n;
    const to = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10);
    const auth = { authorization: `Bearer ${service.config.http.apiToken}` };
    const origin = await app.listen({ host: "127.0.0.1", port: 0 });
    const zones = ["UTC", "America/Los_Angeles", "Asia/Kathmandu"];
    const times: Record<string, number[]> = Object.fromEntries(zones.map((z) => [z, []]));
    let rows = 0;
    for (let round = 0; round < rounds + 2; round++) {
      for (const zone of zones) {
        const url = `${origin}/v1/usage?workspaceId=bench-ws&from=${from}&to=${to}&groupBy=date,model&timeZone=${zone}`;
        const { ms, value } = await timed(async () => {
          const res = await fetch(url, { headers: auth });
          if (res.status !== 200) throw new Error(`usage-zones bench: ${res.status} ${await res.text()}`);
          return (await res.json()) as { rows: unknown[] };
        });
        rows = value.rows.length;
        // The first two rounds warm up connections, plans and caches.
        if (round >= 2) times[zone]!.push(ms);
      }
    }
    const medianMs = Object.fromEntries(zones.map((z) => [z, median(times[z]!)]));
    const worst = Math.max(...zones.filter((z) => z !== "UTC").map((z) => medianMs[z]!));
    return { connections, days, bucketRows, rows, medianMs, ratio: worst / medianMs.UTC! };
  } finally {
    await app.close();
    await service.close();
  }
}
