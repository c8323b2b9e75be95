import pg from "pg";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { recordScenario } from "../support/fault-summary.js";
import { AUTH, connect, request } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { captureLogs, dumpDatabase, findSecrets } from "../support/leaks.js";
import { ADMIN_URL } from "../../dev/postgres.js";
import { generatePredictions } from "../../dev/predictions.js";
import { dumpRedis } from "../support/redis.js";
import { ThrowawayRedis } from "../support/redis-server.js";
import { checkpointPages, expectExact, waitForSyncedSince } from "../support/sync-checks.js";

// Redis and Postgres failing under a running backfill. Redis is a throwaway redis-server on its own port.

const TIMEOUT = 180_000;
let redis: ThrowawayRedis;
let h: Harness;
const logs = captureLogs();
beforeAll(async () => {
  redis = await ThrowawayRedis.create();
  await redis.start();
  h = await createHarness({ REDIS_URL: redis.url, JOB_ATTEMPTS: "50", JOB_BACKOFF_MS: "20", JOB_LOCK_MS: "1000", RECONCILE_SECONDS: "1" });
  h.fake.pageLatencyMs = 5;
});
afterAll(async () => {
  logs.stop();
  await h.close();
  await redis.destroy();
});
const tokens: string[] = [];

async function startBackfill(name: string, count: number) {
  const truth = generatePredictions({ count, days: 30, seed: tokens.length + 1, idPrefix: name });
  const { id, token } = await connect(h, { name, predictions: truth });
  tokens.push(token);
  await waitFor(
    "backfill under way",
    () => checkpointPages(h, id),
    (p) => p >= 10,
  );
  return { id, truth };
}

test(
  "Redis killed (SIGKILL) mid-backfill and started again from its AOF: the run continues and is exact",
  async () => {
    const { id, truth } = await startBackfill("aof", 15_000);
    await redis.kill9();
    const pagesWhileDown = await checkpointPages(h, id);
    await redis.start();
    await waitForSyncedSince(h, id, null, 120_000);
    await expectExact(h, id, truth);
    recordScenario({
      scenario: "Redis dies and returns (AOF)",
      injected: `SIGKILL redis-server at page ${pagesWhileDown}/150, restart on the same port`,
      outcome: "workers reconnect; run resumes; exact totals",
    });
  },
  TIMEOUT,
);

test(
  "Redis comes back empty: the running workers' reconciler rebuilds the scheduler and resumes the run from Postgres, no restart",
  async () => {
    const { id, truth } = await startBackfill("empty", 15_000);
    await redis.wipe();
    const pagesAtLoss = await checkpointPages(h, id);
    await redis.start();
    // Nothing else: no restart, no syncNow. The reconciler (every RECONCILE_SECONDS) notices.
    await waitForSyncedSince(h, id, null, 120_000);
    await expectExact(h, id, truth);
    expect(await h.ctx.queues.queue("sync").getJobScheduler(`sync-${id}`)).toBeTruthy();
    // Resumed, not restarted: one run started before the first finished (a tick retried across the loss may start the next).
    const runs = await h.ctx.db.integrationEvent.findMany({
      where: { connectionId: id, kind: { in: ["sync_started", "sync_completed"] } },
      orderBy: { id: "asc" },
      select: { kind: true },
    });
    expect(runs.slice(0, runs.findIndex((e) => e.kind === "sync_completed") + 1).map((e) => e.kind)).toEqual([
      "sync_started",
      "sync_completed",
    ]);
    recordScenario({
      scenario: "Redis loses all data (issue 11 #12)",
      injected: `wipe Redis at page ${pagesAtLoss}/150 (queues and schedulers gone), workers left running`,
      outcome: "reconciler rebuilt the schedulers within RECONCILE_SECONDS; run resumed at its checkpoint; exact",
    });
  },
  TIMEOUT,
);

test(
  "a run whose slice jobs are gone (failed as stalled too often, or lost between a write and its enqueue) resumes within seconds, not at the next scheduled tick",
  async () => {
    const { id, truth } = await startBackfill("lost", 15_000);
    // Slow pages while the workers stop: the slices in flight finish (each within SYNC_SLICE_MS) without reading the run to its end.
    h.fake.pageLatencyMs = 200;
    await h.service.stopWorkers();
    const sync = h.ctx.queues.queue("sync");
    let lost = 0;
    try {
      for (const job of await sync.getJobs(["waiting", "delayed", "prioritized"])) {
        if (job?.name.startsWith("slice ")) lost += Number(await job.remove().then(() => 1));
      }
      expect(lost).toBeGreaterThan(0);
      // The connection's scheduler is there, so nothing is rebuilt; its next tick is SYNC_INTERVAL_MINUTES away.
      expect(await sync.getJobScheduler(`sync-${id}`)).toBeTruthy();
    } finally {
      h.fake.pageLatencyMs = 5;
      await h.service.startWorkers();
    }
    await waitForSyncedSince(h, id, null, 30_000);
    await expectExact(h, id, truth);
    expect(await h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: "sync_started" } })).toBe(1);
    recordScenario({
      scenario: "a run's slice jobs lost",
      injected: `${lost} waiting slice job(s) removed while the workers were stopped`,
      outcome: "the reconciler saw the run make no progress with no job of its own and ticked it; resumed at its checkpoint; exact",
    });
  },
  TIMEOUT,
);

test(
  "Postgres connections terminated again and again mid-transaction: jobs retry, nothing lost or doubled",
  async () => {
    const { id, truth } = await startBackfill("pgkill", 15_000);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    let terminated = 0;
    let rounds = 0;
    try {
      while (!(await h.ctx.db.connection.findUniqueOrThrow({ where: { id } })).lastSyncedAt && rounds < 400) {
        const { rowCount } = await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle'",
          [h.t.name],
        );
        terminated += rowCount ?? 0;
        rounds++;
        await new Promise((r) => setTimeout(r, 15));
      }
    } finally {
      await admin.end();
    }
    // Jobs that used up their attempts while Postgres was failing are resumed by the next tick.
    await producer.syncNow(h.ctx, id).catch(() => undefined);
    await waitForSyncedSince(h, id, null, 120_000);
    await expectExact(h, id, truth);
    expect(terminated).toBeGreaterThan(5);
    recordScenario({
      scenario: "Postgres connections fail mid-transaction",
      injected: `${terminated} busy backends terminated over ${rounds} rounds`,
      outcome: "transactions roll back, jobs retry; exact totals",
    });
  },
  TIMEOUT,
);

test(
  "while Redis is down: /readyz says so in time, Postgres reads answer, writes fail fast and leave nothing; Idempotency-Key retries return the first result",
  async () => {
    const app = await buildServer(h.ctx);
    const origin = await app.listen({ host: "127.0.0.1", port: 0 });
    const call = (method: string, path: string, body?: object, headers: Record<string, string> = {}) =>
      request(origin, method, path, body, { ...AUTH, ...headers });
    try {
      const token = "r8_redisDownToken000000000000000";
      tokens.push(token);
      h.fake.addAccount(token, { type: "user", username: "down" }, generatePredictions({ count: 50, seed: 99, idPrefix: "rd" }));
      const existing = await producer.connect(h.ctx, { workspaceId: "ws-down", token });
      await waitForSyncedSince(h, existing.id, null);
      await redis.kill9();

      const ready = await call("GET", "/readyz");
      expect(ready).toMatchObject({ status: 503, body: { postgres: "ok", redis: "unreachable" } });
      expect(ready.ms).toBeLessThan(2_500);
      for (const path of [
        `/v1/connections/${existing.id}`,
        "/v1/connections?workspaceId=ws-down",
        `/v1/usage?workspaceId=ws-down&from=${new Date(Date.now() - 90 * 86_400_000).toISOString().slice(0, 10)}&to=${new Date().toISOString().slice(0, 10)}`,
        "/metrics",
      ]) {
        const read = await call("GET", path);
        expect({ path, status: read.status }).toEqual({ path, status: 200 });
        expect(read.ms).toBeLessThan(2_500);
      }
      const key = { "idempotency-key": "create-ws-down-1" };
      const refused = await call("POST", "/v1/connections", { workspaceId: "ws-down", token: "r8_secondDownToken0000000000" }, key);
      expect(refused).toMatchObject({ status: 503, body: { error: "unavailable" } });
      expect(refused.ms).toBeLessThan(2_500);
      expect(await h.ctx.db.connection.count({ where: { workspaceId: "ws-down" } })).toBe(1);
      // Disconnect keeps its promise without Redis: the token is gone at once.
      expect((await call("DELETE", `/v1/connections/${existing.id}`)).status).toBe(204);
      expect(await h.ctx.db.connection.findUniqueOrThrow({ where: { id: existing.id } })).toMatchObject({ tokenCiphertext: null });

      await redis.start();
      const second = "r8_secondDownToken0000000000";
      tokens.push(second);
      h.fake.addAccount(second, { type: "user", username: "down2" });
      const first = await call("POST", "/v1/connections", { workspaceId: "ws-down", token: second }, key);
      const retried = await call("POST", "/v1/connections", { workspaceId: "ws-down", token: second }, key);
      expect(first.status).toBe(202);
      expect(retried).toMatchObject({ status: 202, body: { id: first.body.id } });
      expect((await call("POST", "/v1/connections", { workspaceId: "ws-down", token: "r8_otherToken000000000000" }, key)).status).toBe(409);
      expect(await h.ctx.db.connection.count({ where: { workspaceId: "ws-down" } })).toBe(2);
      await waitFor(
        "the retried connect verified once",
        () => h.ctx.db.connection.findUniqueOrThrow({ where: { id: first.body.id } }),
        (c) => c.status === "connected",
      );
      // The scheduler a DELETE could not remove while Redis was down is removed by the reconciler.
      await waitFor(
        "stale scheduler removed",
        () => h.ctx.queues.queue("sync").getJobScheduler(`sync-${existing.id}`),
        (s) => !s,
      );
      recordScenario({
        scenario: "Redis down under the API (issue 11 #5)",
        injected: "SIGKILL redis-server; probes, reads, POST, DELETE; then POST retried with one Idempotency-Key",
        outcome: `/readyz 503 in ${ready.ms} ms; reads 200; POST 503 in ${refused.ms} ms, nothing created; DELETE 204; retries return one connection`,
      });
    } finally {
      await app.close();
    }
  },
  TIMEOUT,
);

test("no token in Redis, the database (but its ciphertext) or the logs", async () => {
  const database = await dumpDatabase(h.t.url);
  expect(findSecrets(tokens, { database, redis: await dumpRedis(h.ctx.redis, h.config.queuePrefix), logs: logs.lines.join("\n") })).toEqual(
    [],
  );
});
