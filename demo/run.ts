import { randomBytes } from "node:crypto";
import cliProgress from "cli-progress";
import Table, { type TableConstructorOptions } from "cli-table3";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { buildServer } from "../src/api/server.js";
import { parseConfig } from "../src/config.js";
import { logger } from "../src/logger.js";
import { startService, type Service } from "../src/service.js";
import { FakeReplicate } from "../dev/fake-replicate.js";
import { waitFor } from "../dev/wait-for.js";
import { generatePredictions } from "../dev/predictions.js";
import { createDemoDatabase, type DemoDatabase } from "./database.js";

// `npm run demo`: the whole product on this machine in under 30 s, against the same fake Replicate
// the tests use. Needs the local Postgres and Redis; creates and drops its own database and keys.
// In a terminal it then keeps serving the support page until Ctrl-C; piped or under CI it exits.

const started = Date.now();
const terminal = process.stdout.isTTY === true;
const ci = !["", "0", "false"].includes(process.env.CI ?? "");
const serve = terminal && !ci;
const say = (text = "") => process.stdout.write(`${text}\n`);
const step = (text: string) => say(terminal ? `\n\x1b[1m▸ ${text}\x1b[0m` : `\n▸ ${text}`);
/** cli-table3 colours its borders and headings unless told not to. */
const table = (options: TableConstructorOptions) => new Table(terminal ? options : { ...options, style: { head: [], border: [] } });
logger.level = "error"; // the event log tables below say what the warnings would

const apiToken = randomBytes(24).toString("base64url");
const supportToken = randomBytes(24).toString("base64url");
const customerToken = `r8_demo${randomBytes(12).toString("hex")}`;

let fake: FakeReplicate | undefined;
let database: DemoDatabase | undefined;
let service: Service | undefined;
let app: FastifyInstance | undefined;
let cleaning: Promise<void> | undefined;

/** Releases whatever was made so far, once, however the demo stops (end, error or Ctrl-C). */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await app?.close();
    if (service) {
      const { redis, config } = service.ctx;
      await service.stopWorkers();
      const keys = await redis.keys(`${config.queuePrefix}*`);
      if (keys.length) await redis.del(...keys);
      await service.close();
    }
    await fake?.close();
    await database?.drop();
  })();
  return cleaning;
}
let walkthroughDone = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(walkthroughDone ? 0 : 130)));
}

let origin = "";
async function api<T = Record<string, unknown>>(method: string, path: string, body?: object): Promise<T> {
  const res = await fetch(origin + path, {
    method,
    headers: { authorization: `Bearer ${apiToken}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (res.status === 204 ? null : res.json()) as T;
}
type Connection = { id: string; status: string; lastSyncedAt: string | null; currentRun: { predictionsSeen: number } | null };
type Event = { occurredAt: string; kind: string; level: string; message: string };
type UsageRow = Record<string, number | string>;
const connection = (id: string) => api<Connection>("GET", `/v1/connections/${id}`);
const events = async (id: string, limit: number) =>
  (await api<{ events: Event[] }>("GET", `/v1/connections/${id}/events?limit=${limit}`)).events;
const day = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);
const usage = async (id: string, fromMsAgo: number, groupBy: string) =>
  (await api<{ rows: UsageRow[] }>("GET", `/v1/usage?connectionId=${id}&from=${day(fromMsAgo)}&to=${day(0)}&groupBy=${groupBy}`)).rows;
const inProgress = async (id: string) => (await usage(id, 31 * 86_400_000, "date")).reduce((n, r) => n + Number(r.inProgress), 0);
function printEvents(list: Event[]) {
  const t = table({ head: ["time (UTC)", "kind", "message"], colWidths: [12, 22, 90], wordWrap: true });
  for (const e of [...list].reverse()) t.push([e.occurredAt.slice(11, 19), e.kind, e.message]);
  say(t.toString());
}

try {
  step("A fake Replicate on loopback: organization acme-ml, 30 days, 4 models, 1 deployment, every status");
  fake = new FakeReplicate();
  // A believable account: the deployment serves one model, and only the last 6 hours still have
  // predictions running, which finish once listed (as real ones would by the next sync).
  const predictions = generatePredictions({
    count: 4_000,
    days: 30,
    seed: 2026,
    deploymentModel: "stability-ai/sdxl",
    inFlightWithinMs: 6 * 3_600_000,
  });
  fake.finishListedInFlight = true;
  const baseUrl = await fake.start();
  fake.addAccount(customerToken, { type: "organization", username: "acme-ml", name: "Acme ML" }, predictions);
  say(`  ${predictions.length} predictions at ${baseUrl}`);

  database = await createDemoDatabase((db) => (database = db));
  step(`Database ${database.name}: created and migrated`);

  const config = parseConfig({
    NODE_ENV: "development",
    DATABASE_URL: database.url,
    REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    QUEUE_PREFIX: `rus-demo-${randomBytes(4).toString("hex")}`,
    TOKEN_ENCRYPTION_KEYS: `demo:${randomBytes(32).toString("base64")}`,
    API_TOKEN: apiToken,
    SUPPORT_TOKEN: supportToken,
    REPLICATE_API_BASE_URL: baseUrl,
    REPLICATE_REQUESTS_PER_SECOND: "200",
    LOG_LEVEL: "warn",
  });
  service = await startService(config, { workers: true });
  app = await buildServer(service.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });

  step(`POST ${origin}/v1/connections — the customer pastes a token`);
  const { id } = await api<{ id: string }>("POST", "/v1/connections", { workspaceId: "acme", token: customerToken });
  say(`  connection ${id}: token stored encrypted, verify job queued (the job carries the id only)`);

  step("Verify, then the 30-day backfill");
  const bar = new cliProgress.SingleBar({ format: "  {bar} {value}/{total} predictions · {status}" }, cliProgress.Presets.shades_classic);
  bar.start(predictions.length, 0, { status: "verifying" });
  const synced = await waitFor(
    "the backfill",
    async () => {
      const c = await connection(id);
      bar.update(c.lastSyncedAt ? predictions.length : (c.currentRun?.predictionsSeen ?? 0), { status: c.status });
      return c;
    },
    (c) => c.lastSyncedAt !== null,
  );
  bar.stop();
  say(`  ${synced.status}; last successful sync ${synced.lastSyncedAt}`);
  const runningAfterBackfill = await inProgress(id);

  step("Daily usage, last 7 days (GET /v1/usage)");
  const t = table({ head: ["day", "predictions", "succeeded", "failed", "canceled", "aborted", "in progress", "compute s"] });
  for (const r of await usage(id, 6 * 86_400_000, "date")) {
    t.push([r.date, r.predictions, r.succeeded, r.failed, r.canceled, r.aborted, r.inProgress, Number(r.computeSeconds).toFixed(1)]);
  }
  say(t.toString());
  const byModel = await usage(id, 6 * 86_400_000, "model,deployment");
  say(
    `  by model/deployment: ${byModel.map((r) => `${r.model}${r.deployment ? ` via ${r.deployment}` : ""} ${r.predictions}`).join(" · ")}`,
  );

  step("Replicate answers 429 with Retry-After: 1 — the job waits, only this connection is delayed");
  fake.inject(customerToken, "predictions", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  await api("POST", `/v1/connections/${id}/sync`);
  const rerun = await waitFor(
    "the throttled sync",
    () => events(id, 5),
    (list) => list[0]?.kind === "sync_completed" && list.some((e) => e.kind === "rate_limited"),
  );
  printEvents(rerun.slice(0, 3));
  const window = /from (\S+) to (\S+)/.exec(rerun.find((e) => e.kind === "sync_started")?.message ?? "");
  const hours = window ? (Date.parse(window[2]!) - Date.parse(window[1]!)) / 3_600_000 : NaN;
  say(`  in progress after the backfill: ${runningAfterBackfill}; after the next run: ${await inProgress(id)}`);
  say(`  the next run read only the lookback: predictions created in the last ${hours.toFixed(1)} h`);

  step("The customer revokes the token at Replicate — the next sync gets 401 and pauses the connection");
  fake.removeToken(customerToken);
  await api("POST", `/v1/connections/${id}/sync`);
  const paused = await waitFor(
    "the paused connection",
    () => connection(id),
    (c) => c.status === "credential_error",
  );
  say(`  status: ${paused.status} (scheduler removed; replacing the token resumes it)`);

  step("The last lines of the integration event log, as support staff read them");
  printEvents(await events(id, 8));

  step(`DELETE /v1/connections/${id}`);
  await api("DELETE", `/v1/connections/${id}`);
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const { rows } = await client.query("SELECT status, token_ciphertext IS NULL AS gone FROM connections WHERE id = $1", [id]);
  await client.end();
  say(`  status ${rows[0].status}; stored token ${rows[0].gone ? "is gone (token_ciphertext is NULL)" : "STILL PRESENT"}`);
  say(`\nDemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
  walkthroughDone = true;

  if (serve) {
    step("Serving the support page on loopback until Ctrl-C");
    say(`  Support page: ${origin}/ui/`);
    say(`  log in with any user name and the support token (read-only): ${supportToken}`);
    say(`  queue dashboard ${origin}/admin/queues and ${origin}/metrics need the API token: ${apiToken}`);
    say("  Press Ctrl-C to stop; the demo's database and queue keys are removed then.");
    await new Promise(() => undefined); // the signal handler above cleans up and exits
  }
} finally {
  await cleanUp();
}
process.exit(0);
