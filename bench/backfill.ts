import http from "node:http";
import * as producer from "../src/producer.js";
import { FakeProcess, countRows, msToLastCompletion, printCounts, startBenchService, timed, withCounts, withCpu } from "./support.js";

export interface BackfillResult {
  latencyMs: number;
  parallelism: number;
  busyDay: number;
  pages: number;
  floorMs: number;
  serviceMs: number;
  ratio: number;
  /** CPU of the service process per page over the measured phase. */
  cpuMsPerPage: number;
}

const WINDOW_DAYS = 90; // the service's default BACKFILL_DAYS

/** A GET with node:http alone, the body as text: the floor's client (and page-costs' baseline). */
export function get(url: string, headers: Record<string, string>, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

/**
 * The fetch floor: the same pages pulled one after another with node:http (a fresh keep-alive
 * agent) and JSON.parse, no validation, no database.
 */
async function fetchFloor(baseUrl: string, token: string): Promise<{ ms: number; pages: number; predictions: number }> {
  const headers = { authorization: `Bearer ${token}` };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const now = Date.now();
  let url: string | null =
    `${baseUrl}/predictions?created_after=${new Date(now - WINDOW_DAYS * 86_400_000).toISOString()}&created_before=${new Date(now).toISOString()}`;
  let pages = 0;
  let predictions = 0;
  try {
    const { ms } = await timed(async () => {
      while (url) {
        const body = JSON.parse(await get(url, headers, agent)) as { next: string | null; results: unknown[] };
        pages++;
        predictions += body.results.length;
        url = body.next;
      }
    });
    return { ms, pages, predictions };
  } finally {
    agent.destroy();
  }
}

/** connect → verify → every page written → aggregates checked, vs the floor measured before and after. */
export async function backfill(
  fake: FakeProcess,
  latencyMs: number,
  count: number,
  { parallelism = 4, busyDay = 0 }: { parallelism?: number; busyDay?: number } = {},
): Promise<BackfillResult> {
  const token = `r8_benchBackfill${latencyMs}x${count}p${parallelism}b${busyDay}`;
  await fake.send({ type: "account", token, count, seed: latencyMs + 1, days: 30, busyDay });
  await fake.send({ type: "latency", ms: latencyMs });
  const service = await startBenchService(fake.baseUrl, { BACKFILL_PARALLELISM: String(parallelism) });
  try {
    const before = await fetchFloor(fake.baseUrl, token);
    const phase = `backfill-${latencyMs}ms-p${parallelism}${busyDay ? "-busy" : ""}`;
    // Timed from connect to the run's completion (its event's time).
    const connectAndWait = async () => {
      const start = new Date();
      const { id } = await producer.connect(service.ctx, { workspaceId: "bench", token });
      const synced = async () => (await countRows(service.ctx, "connections WHERE id = $1 AND last_synced_at IS NOT NULL", [id])) === 1;
      return { ms: await msToLastCompletion(service.ctx, [id], start, synced), value: id };
    };
    const {
      counts,
      value: { cpuMs, value: run },
    } = await withCounts(() => withCpu(connectAndWait, phase));
    const after = await fetchFloor(fake.baseUrl, token);
    printCounts(`backfill ${latencyMs} ms, ${parallelism} windows`, counts, after.pages, "page");
    const totals = await service.ctx.db.usageBucket.aggregate({ where: { connectionId: run.value }, _sum: { predictions: true } });
    if (totals._sum.predictions !== count || before.predictions !== count) {
      throw new Error(`backfill bench: expected ${count} predictions, got ${totals._sum.predictions} (floor saw ${before.predictions})`);
    }
    const floorMs = (before.ms + after.ms) / 2;
    return {
      latencyMs,
      parallelism,
      busyDay,
      pages: before.pages,
      floorMs,
      serviceMs: run.ms,
      ratio: run.ms / floorMs,
      cpuMsPerPage: cpuMs / before.pages,
    };
  } finally {
    await fake.send({ type: "latency", ms: 0 });
    await service.close();
  }
}
