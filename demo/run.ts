import { randomBytes } from "node:crypto";
import cliProgress from "cli-progress";
import Table from "cli-table3";
import pg from "pg";
import { buildServer } from "../src/api/server.js";
import { parseConfig } from "../src/config.js";
import { createContext } from "../src/context.js";
import { logger } from "../src/logger.js";
import { processors } from "../jobs/index.js";
import { startWorkers, workerDeps } from "../src/queue/workers.js";
import { FakeReplicate } from "../dev/fake-replicate.js";
import { createMigratedDatabase } from "../dev/postgres.js";
import { waitFor } from "../dev/wait-for.js";
import { generatePredictions } from "../dev/predictions.js";

// `npm run demo`: the whole product on this machine in under 30 s, against the same fake Replicate
// the tests use. Needs the local Postgres and Redis; creates and drops its own database and keys.

const started = Date.now();
const say = (text = "") => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`\n\x1b[1m▸ ${text}\x1b[0m`);
logger.level = "error"; // the event log tables below say what the warnings would

const apiToken = randomBytes(24).toString("base64url");
const supportToken = randomBytes(24).toString("base64url");
const customerToken = `r8_demo${randomBytes(12).toString("hex")}`;

step("A fake Replicate on loopback: organization acme-ml, 30 days, 4 models, 1 deployment, every status");
const fake = new FakeReplicate();
const predictions = generatePredictions({ count: 4_000, days: 30, seed: 2026 });
const baseUrl = await fake.start();
fake.addAccount(customerToken, { type: "organization", username: "acme-ml", name: "Acme ML" }, predictions);
say(`  ${predictions.length} predictions at ${baseUrl}`);

const database = createMigratedDatabase("rus_demo");
const databaseUrl = database.url;
step(`Database ${database.name}: created and migrated`);

const config = parseConfig({
  NODE_ENV: "development",
  DATABASE_URL: databaseUrl,
  REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: `rus-demo-${randomBytes(4).toString("hex")}`,
  TOKEN_ENCRYPTION_KEYS: `demo:${randomBytes(32).toString("base64")}`,
  API_TOKEN: apiToken,
  SUPPORT_TOKEN: supportToken,
  REPLICATE_API_BASE_URL: baseUrl,
  REPLICATE_REQUESTS_PER_SECOND: "200",
  LOG_LEVEL: "warn",
});
const ctx = createContext(config);
const workers = startWorkers(workerDeps(ctx), processors(ctx));
const app = await buildServer(ctx);
const origin = await app.listen({ host: "127.0.0.1", port: 0 });

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
const connection = (id: string) => api<Connection>("GET", `/v1/connections/${id}`);
const events = async (id: string, limit: number) =>
  (await api<{ events: Event[] }>("GET", `/v1/connections/${id}/events?limit=${limit}`)).events;
function printEvents(list: Event[]) {
  const table = new Table({ head: ["time (UTC)", "kind", "message"], colWidths: [12, 22, 90], wordWrap: true });
  for (const e of [...list].reverse()) table.push([e.occurredAt.slice(11, 19), e.kind, e.message]);
  say(table.toString());
}

try {
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

  step("Daily usage, last 7 days (GET /v1/usage)");
  const to = new Date().toISOString().slice(0, 10);
  const from = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
  const usage = await api<{ rows: Record<string, number | string>[] }>(
    "GET",
    `/v1/usage?connectionId=${id}&from=${from}&to=${to}&groupBy=date`,
  );
  const table = new Table({ head: ["day", "predictions", "succeeded", "failed", "canceled", "aborted", "in progress", "compute s"] });
  for (const r of usage.rows) {
    table.push([r.date, r.predictions, r.succeeded, r.failed, r.canceled, r.aborted, r.inProgress, Number(r.computeSeconds).toFixed(1)]);
  }
  say(table.toString());
  const byModel = await api<{ rows: { model: string; deployment: string; predictions: number }[] }>(
    "GET",
    `/v1/usage?connectionId=${id}&from=${from}&to=${to}&groupBy=model,deployment`,
  );
  say(
    `  by model/deployment: ${byModel.rows.map((r) => `${r.model}${r.deployment ? ` via ${r.deployment}` : ""} ${r.predictions}`).join(" · ")}`,
  );

  step("Replicate answers 429 with Retry-After: 1 — the job waits, only this connection is delayed");
  fake.inject(customerToken, "predictions", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  await api("POST", `/v1/connections/${id}/sync`);
  await waitFor(
    "the throttled sync",
    () => events(id, 5),
    (list) => list[0]?.kind === "sync_completed" && list.some((e) => e.kind === "rate_limited"),
  );
  printEvents(await events(id, 3));

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
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query("SELECT status, token_ciphertext IS NULL AS gone FROM connections WHERE id = $1", [id]);
  await client.end();
  say(`  status ${rows[0].status}; stored token ${rows[0].gone ? "is gone (token_ciphertext is NULL)" : "STILL PRESENT"}`);
  say(
    `\nDemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s. Support page: GET /ui/ · queue dashboard: /admin/queues · metrics: /metrics`,
  );
} finally {
  await app.close();
  await workers.close();
  const keys = await ctx.redis.keys(`${config.queuePrefix}*`);
  if (keys.length) await ctx.redis.del(...keys);
  await ctx.close();
  await fake.close();
  await database.drop();
}
process.exit(0);
