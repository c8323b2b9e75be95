import type { FastifyInstance } from "fastify";
import pg from "pg";
import { buildServer } from "../../src/api/server.js";
import { boundedRead } from "../../src/db/client.js";
import { QueryTimeoutError, ValidationError } from "../../src/errors.js";
import * as producer from "../../src/producer.js";
import { generatePredictions } from "../../dev/predictions.js";
import { seedUsage } from "../../dev/usage-seed.js";
import { AUTH, withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Every usage query is bounded, whoever asks (the read-only support token can): a range longer than
// MAX_USAGE_DAYS is refused at once, the work grows with the data in scope rather than with the range,
// a statement past USAGE_QUERY_TIMEOUT_MS is stopped (504), and a client that hangs up cancels its
// query. The load is seeded in SQL (dev/usage-seed.ts).

const started = withApi();
const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);
const longest = { from: day(-(producer.MAX_USAGE_DAYS - 1)), to: day(0) };
// How the usage and idle-floor statements begin (pg_stat_activity keeps only the first 1 KiB of a query).
const USAGE_STATEMENT = "%WITH releases AS (%";
const extra: FastifyInstance[] = [];

beforeAll(async () => {
  const pool = started.h.ctx.db.pool;
  await seedUsage(pool, { workspaceId: "ws-one", connections: 1, from: day(-30), to: day(0), rowsPerDay: 1, covered: true });
  await seedUsage(pool, { workspaceId: "ws-fleet", connections: 1000, ...longest });
  // 80,000 daily rows with dedicated deployments: a query over all of them takes a while.
  await seedUsage(pool, { workspaceId: "ws-heavy", connections: 100, ...longest, rowsPerDay: 2, deployments: true, covered: true });
  await pool.query("ANALYZE");
}, 120_000);
afterAll(async () => {
  for (const app of extra) await app.close();
});

/** A GET with the read-only support token's reach (any GET), timed; the body parsed when it is JSON. */
async function get(url: string, origin = started.api.origin, signal?: AbortSignal) {
  const start = performance.now();
  const res = await fetch(origin + url, { headers: AUTH, signal });
  const text = await res.text();
  const json = res.headers.get("content-type")?.includes("json");
  return { status: res.status, headers: res.headers, body: json ? JSON.parse(text) : text, ms: performance.now() - start };
}

/** Another server on the same service whose usage statements may run `timeoutMs`. */
async function serverWithTimeout(timeoutMs: number): Promise<string> {
  const app = await buildServer({ ...started.h.ctx, config: { ...started.h.ctx.config, usage: { timeoutMs } } });
  extra.push(app);
  return app.listen({ host: "127.0.0.1", port: 0 });
}

/** Backends of the test database running (or last having run) a usage statement. */
async function usageBackends(): Promise<{ pid: number; state: string; wait: string | null }[]> {
  const { rows } = await started.h.ctx.db.pool.query(
    `SELECT pid, state, wait_event_type AS wait FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1`,
    [USAGE_STATEMENT],
  );
  return rows;
}

test("a range over the limit is a 400 naming it, within 2 s: 1970–9999 on one connection, 1,000 connections over 130 years (JSON and CSV)", async () => {
  for (const url of [
    "/v1/usage?workspaceId=ws-one&from=1970-01-01&to=9999-12-31&fillZeros=true&groupBy=date",
    "/v1/usage?workspaceId=ws-fleet&from=1970-01-01&to=2100-01-01&groupBy=date,connection",
    "/v1/usage?workspaceId=ws-fleet&from=1970-01-01&to=2100-01-01&groupBy=date,connection&format=csv",
  ]) {
    const res = await get(url);
    expect({ url, status: res.status, error: res.body.error }).toEqual({ url, status: 400, error: "validation_failed" });
    expect(res.body.issues).toEqual([
      expect.stringMatching(/^to: from\.\.to spans \d+ days; a query covers at most 400 \(from 1970-01-01, to 1971-02-04/),
    ]);
    expect(res.ms).toBeLessThan(2_000);
  }
  await expect(producer.queryUsage(started.h.ctx, { workspaceId: "ws-one", from: "1970-01-01", to: "9999-12-31" })).rejects.toThrow(
    ValidationError,
  );
});

test("the last days of the calendar answer (no day past 9999-12-31 is ever listed)", async () => {
  for (const zone of ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"]) {
    const res = await get(
      `/v1/usage?workspaceId=ws-one&from=9999-12-01&to=9999-12-31&groupBy=date&fillZeros=true&timeZone=${encodeURIComponent(zone)}`,
    );
    expect({ zone, status: res.status, rows: res.body.rows }).toEqual({ zone, status: 200, rows: [] });
    expect(res.ms).toBeLessThan(2_000);
  }
});

// The same bound as a refusal would be too tight on a shared machine for a first (cold) answer over 1,000
// connections' coverage; what matters is that nothing here grows with the 400 days.
test("the longest allowed range answers in seconds: 1,000 connections without usage or deployments, and a month of one connection", async () => {
  const fleet = await get(`/v1/usage?workspaceId=ws-fleet&from=${longest.from}&to=${longest.to}&groupBy=date,connection&fillZeros=true`);
  expect([fleet.status, fleet.body.rows, fleet.body.idleFloor, fleet.body.coverage.length]).toEqual([200, [], [], 1000]);
  expect(fleet.ms).toBeLessThan(5_000);
  const one = await get(`/v1/usage?workspaceId=ws-one&from=${longest.from}&to=${longest.to}&groupBy=date&fillZeros=true`);
  expect([one.status, one.body.rows.length]).toEqual([200, 31]);
  expect(one.ms).toBeLessThan(2_000);
});

test("a CSV is whole or an error: no rows is a header line, never an empty 200; 1,000 connections' coverage leaves the headers", async () => {
  const empty = await get(`/v1/usage?workspaceId=ws-fleet&from=${longest.from}&to=${longest.to}&groupBy=date,connection&format=csv`);
  expect(empty.status).toBe(200);
  expect(empty.body).toMatch(/^line,date,connectionId,predictions,.*,instanceSeconds\n$/);
  expect([empty.headers.get("x-coverage"), empty.headers.get("x-coverage-omitted")]).toEqual([null, expect.stringMatching(/format=json/)]);
});

test("an answer over MAX_USAGE_LINES lines is a 400 asking for less", async () => {
  const res = await get(`/v1/usage?workspaceId=ws-heavy&from=${longest.from}&to=${longest.to}&groupBy=date,connection,model`);
  expect([res.status, res.body.issues]).toEqual([400, [expect.stringMatching(/^groupBy: the answer would hold more than 50000 lines/)]]);
});

test("a query past the statement timeout ends with a 504 in the error shape (JSON and CSV), and its backend is gone", async () => {
  const origin = await serverWithTimeout(50);
  for (const format of ["json", "csv"]) {
    const res = await get(`/v1/usage?workspaceId=ws-heavy&from=${longest.from}&to=${longest.to}&groupBy=date&format=${format}`, origin);
    expect({ format, status: res.status, type: res.headers.get("content-type"), error: res.body.error }).toEqual({
      format,
      status: 504,
      type: "application/json; charset=utf-8",
      error: "query_timeout",
    });
    expect(res.body).toMatchObject({ message: expect.stringMatching(/limit of 50 ms/), requestId: expect.any(String) });
    expect(res.ms).toBeLessThan(2_000);
  }
  await waitFor("no backend left on the usage statement", usageBackends, (b) => b.length === 0, 2_000);
  const fast = { ...started.h.ctx, config: { ...started.h.ctx.config, usage: { timeoutMs: 50 } } };
  await expect(producer.queryUsage(fast, { workspaceId: "ws-heavy", ...longest, groupBy: ["date"] })).rejects.toThrow(QueryTimeoutError);
  // The pool was not left short: the same query with the service's own limit answers.
  expect((await get(`/v1/usage?workspaceId=ws-one&from=${day(-3)}&to=${day(0)}`)).status).toBe(200);
});

test("the limit holds for a read in all, not per statement: statements each under it, together over it, are stopped", async () => {
  let ran = 0;
  const start = performance.now();
  const read = boundedRead(started.h.ctx.db, { timeoutMs: 200 }, async (sql) => {
    for (let i = 0; i < 10; i++) {
      await sql.query("SELECT pg_sleep(0.05)");
      ran++;
    }
  });
  await expect(read).rejects.toThrow(QueryTimeoutError);
  expect(performance.now() - start).toBeLessThan(1_000);
  expect(ran).toBeLessThan(5);
});

test("a client that hangs up cancels its query: the backend is gone within 2 s", async () => {
  // The price book locked by another transaction: the query waits on it until cancelled, however fast the machine.
  const locker = new pg.Client({ connectionString: started.h.t.url });
  await locker.connect();
  try {
    await locker.query("BEGIN; LOCK TABLE hardware_prices IN ACCESS EXCLUSIVE MODE");
    const client = new AbortController();
    const request = get(`/v1/usage?workspaceId=ws-one&from=${day(-30)}&to=${day(0)}&groupBy=date`, started.api.origin, client.signal);
    const [waiting] = await waitFor("the usage query waiting", usageBackends, (b) => b.some((x) => x.state === "active"));
    client.abort();
    await expect(request).rejects.toThrow(/abort/i);
    const start = performance.now();
    await waitFor("the backend gone", usageBackends, (b) => !b.some((x) => x.pid === waiting!.pid), 2_000, 10);
    expect(performance.now() - start).toBeLessThan(2_000);
  } finally {
    await locker.query("ROLLBACK");
    await locker.end();
  }
  expect((await get(`/v1/usage?workspaceId=ws-one&from=${day(-3)}&to=${day(0)}`)).status).toBe(200);
});

test("/healthz and a sync write keep their latency while usage queries over the longest range run", async () => {
  const token = "r8_boundsSyncWhileQuerying0000";
  started.h.fake.addAccount(
    token,
    { type: "user", username: "busy" },
    generatePredictions({ count: 50, days: 3, seed: 19, idPrefix: "b" }),
  );
  const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-busy", token });
  let synced = await waitForSyncedSince(started.h, id, null);

  let querying = true;
  let answered = 0;
  const heavy = (async () => {
    while (querying) {
      const res = await get(`/v1/usage?workspaceId=ws-heavy&from=${longest.from}&to=${longest.to}&groupBy=date`);
      expect(res.status).toBe(200);
      answered++;
    }
  })();
  try {
    await waitFor("a usage query running", usageBackends, (b) => b.some((x) => x.state === "active"), 5_000, 5);
    for (let i = 0; i < 3; i++) {
      const health = await get("/healthz");
      expect([health.status, health.ms < 500]).toEqual([200, true]);
      started.h.fake.upsertPredictions(token, generatePredictions({ count: 20, days: 1, seed: 30 + i, idPrefix: `n${i}` }));
      const start = performance.now();
      await producer.syncNow(started.h.ctx, id);
      synced = await waitForSyncedSince(started.h, id, synced.lastSyncedAt, 8_000);
      // ~0.1 s alone, 1–4 s with both cores busy (two suites at once): a bound, loose enough for a busy machine.
      expect(performance.now() - start).toBeLessThan(5_000);
    }
  } finally {
    querying = false;
    await heavy;
  }
  expect(answered).toBeGreaterThan(0);
});

test("the idle floor follows each release until the next one or the deployment's last listing, priced by that day's hardware", async () => {
  const [id] = await seedUsage(started.h.ctx.db.pool, { workspaceId: "ws-releases", connections: 1, from: day(-10), to: day(-2) });
  await started.h.ctx.db.pool.query(
    `INSERT INTO deployments (connection_id, name, release_number, model, version, hardware, min_instances, max_instances, effective_from, last_seen_on)
     VALUES ($1, 'acme/dedicated', 1, 'acme/m', 'v1', 'gpu-t4', 1, 2, $2, $4), ($1, 'acme/dedicated', 2, 'acme/m', 'v2', 'gpu-a40-large', 2, 2, $3, $4)`,
    [id, day(-10), day(-5), day(-2)],
  );
  const { body } = await get(`/v1/usage?connectionId=${id}&from=${day(-12)}&to=${day(0)}&groupBy=date`);
  const expected = [-10, -9, -8, -7, -6, -5, -4, -3, -2].map((d) => ({
    date: day(d),
    instanceSeconds: d < -5 ? 86_400 : 172_800,
    estimatedCostUsd: d < -5 ? "19.44" : "125.28", // gpu-t4 0.000225, gpu-a40-large 0.000725 per second
  }));
  expect(body.idleFloor.map((l: { date: string; instanceSeconds: number; estimatedCostUsd: string }) => l)).toEqual(
    expected.map((e) => expect.objectContaining(e)),
  );
});
