import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { request } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { generatePredictions } from "../../dev/predictions.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Connection health in the list, paging and filters, and what /v1/usage says about its own
// completeness while a first backfill is stuck behind a 429.

let h: Harness;
let app: FastifyInstance;
let origin: string;
let stuck: string;
let empty: string;
const revoked: string[] = [];

const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);
const get = (path: string) => request(origin, "GET", path);

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  const pass = { kind: "delay", ms: 0 } as const;
  // 1,000 predictions over 20 days, 100 a page: three pages, then a 429 asking for 10 minutes.
  h.fake.addAccount(
    "r8_stuckBehind429000000000",
    { type: "organization", username: "stuck-org" },
    generatePredictions({ count: 1_000, days: 20, seed: 5 }),
  );
  h.fake.inject("r8_stuckBehind429000000000", "predictions", pass, pass, pass, {
    kind: "status",
    status: 429,
    headers: { "retry-after": "600" },
  });
  h.fake.addAccount("r8_emptyAccount0000000000", { type: "user", username: "quiet-user" });
  const connect = async (workspaceId: string, token: string) => (await producer.connect(h.ctx, { workspaceId, token })).id;
  [stuck, empty] = await Promise.all([connect("ws-stuck", "r8_stuckBehind429000000000"), connect("ws-empty", "r8_emptyAccount0000000000")]);
  for (let i = 0; i < 5; i++) revoked.push(await connect("ws-list", `r8_unknownToken${i}000000000`));
  await waitForSyncedSince(h, empty, null);
  await waitFor(
    "the revoked tokens paused",
    () => h.ctx.db.connection.count({ where: { status: "credential_error" } }),
    (n) => n === 5,
  );
});
afterAll(async () => {
  await app?.close();
  await h.close();
});

test("a first backfill held by a 429 is `throttled` in the list, with its progress and until", async () => {
  const { body } = await waitFor(
    "the stuck backfill throttled",
    () => get("/v1/connections?state=throttled"),
    (r) => r.body.connections?.length === 1,
  );
  const [c] = body.connections;
  expect(c.id).toBe(stuck);
  expect(c.health).toMatchObject({ state: "throttled", action: null, lastError: null });
  expect(Date.parse(c.health.until)).toBeGreaterThan(Date.now() + 500_000);
  expect(c.health.progress).toBeGreaterThan(0);
  expect(c.health.progress).toBeLessThan(1);
  expect(c.health.message).not.toMatch(/HTTP|429|pages/);
  // The 429's Retry-After (600 s) lowered the token's pace: the event records it and health says it.
  const [event] = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: stuck, kind: "rate_limited" } });
  const paced = (event!.detail as { pacedPerMinute?: number }).pacedPerMinute;
  expect(paced).toBeGreaterThan(0);
  expect(paced).toBeLessThan(600); // below the configured cap's 10/s
  const { body: one } = await get(`/v1/connections/${stuck}`);
  expect(one.health.pacedPerMinute).toBe(paced);
  expect(one.health.message).toMatch(new RegExp(`syncing is paced at ${paced} requests/min and continues at \\d{4}-`));
  // The metric ages it from its verification, so a stuck first backfill can alert.
  const metrics = await h.ctx.metrics.registry.metrics();
  expect(metrics).toMatch(
    new RegExp(`^rus_connection_last_sync_age_seconds\\{connection_id="${stuck}",workspace_id="ws-stuck"\\} [\\d.]+$`, "m"),
  );
});

test("coverage during the stuck backfill: partial span, not complete; zero fill only inside it; CSV carries it in X-Coverage", async () => {
  await waitFor(
    "three pages written and the run throttled",
    () => get(`/v1/connections/${stuck}`),
    // Windows split off read beside the first: the 429 holds whichever meets it, after three pages in all.
    (r) => r.body.currentRun?.pagesDone >= 3 && r.body.health?.state === "throttled",
  );
  const range = `connectionId=${stuck}&from=${day(-29)}&to=${day(0)}`;
  const { body } = await get(`/v1/usage?${range}&groupBy=date`);
  expect(body.coverage).toHaveLength(1);
  const [cov] = body.coverage;
  expect(cov).toMatchObject({ connectionId: stuck, complete: false, lastSyncedAt: null, to: day(0) });
  expect(cov.from > day(-20)).toBe(true);
  expect(body.rows.every((r: { date: string }) => r.date >= cov.from)).toBe(true);

  const filled = await get(`/v1/usage?${range}&groupBy=date&fillZeros=true`);
  const dates = filled.body.rows.map((r: { date: string }) => r.date);
  expect(dates[0]).toBe(cov.from);
  expect(dates).toEqual([...dates].sort());
  expect(dates.every((d: string) => d >= cov.from && d <= cov.to)).toBe(true);
  expect(new Set(dates).size).toBe(dates.length);

  const csv = await get(`/v1/usage?${range}&groupBy=date&format=csv`);
  const spans = body.coverage.map(({ days, ...span }: { days: unknown[] }) => (expect(days.length).toBeGreaterThan(0), span));
  expect(JSON.parse(csv.headers.get("x-coverage")!)).toEqual(spans);
});

test("a synced empty account: complete coverage and a zero row for every day; a range before its backfill was never read", async () => {
  const { body } = await get(`/v1/usage?connectionId=${empty}&from=${day(-6)}&to=${day(0)}&groupBy=date&fillZeros=true`);
  expect(body.coverage[0]).toMatchObject({ from: day(-6), to: day(0), complete: true, lastSyncedAt: expect.any(String) });
  expect(body.rows.map((r: { date: string; predictions: number }) => [r.date, r.predictions])).toEqual(
    [-6, -5, -4, -3, -2, -1, 0].map((d) => [day(d), 0]),
  );
  const before = await get(`/v1/usage?connectionId=${empty}&from=2001-01-01&to=2001-01-31&groupBy=date&fillZeros=true`);
  expect(before.body.coverage[0]).toMatchObject({ from: null, to: null, complete: false });
  expect(before.body.rows).toEqual([]);
  expect((await get(`/v1/usage?connectionId=${empty}&from=${day(-6)}&to=${day(0)}&groupBy=model&fillZeros=true`)).status).toBe(400);
});

test("the list pages in one stable order (createdAt desc, id desc) with or without filters; unknown parameters are a 400", async () => {
  const all = (await get("/v1/connections?limit=200")).body;
  expect(all.nextCursor).toBeNull();
  const ids: string[] = all.connections.map((c: { id: string }) => c.id);
  expect(ids).toHaveLength(7);
  const keys = all.connections.map((c: { createdAt: string; id: string }) => `${c.createdAt}|${c.id}`);
  expect(keys).toEqual([...keys].sort().reverse());

  const paged: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { body: { connections: { id: string }[]; nextCursor: string | null } } = await get(
      `/v1/connections?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
    );
    paged.push(...page.body.connections.map((c) => c.id));
    cursor = page.body.nextCursor;
  } while (cursor);
  expect(paged).toEqual(ids);

  const action = (await get("/v1/connections?state=action_required&limit=3")).body;
  expect(action.connections.map((c: { id: string }) => c.id)).toEqual(ids.filter((id) => revoked.includes(id)).slice(0, 3));
  const rest = (await get(`/v1/connections?state=action_required&limit=3&cursor=${action.nextCursor}`)).body;
  expect(rest).toEqual({ connections: expect.any(Array), nextCursor: null });
  expect(rest.connections).toHaveLength(2);
  expect(action.connections[0].health).toMatchObject({ state: "action_required", action: expect.stringMatching(/copy the token again/) });

  const inWorkspace = (await get("/v1/connections?workspaceId=ws-list")).body.connections.map((c: { id: string }) => c.id);
  expect(inWorkspace).toEqual(ids.filter((id) => revoked.includes(id)));
  expect((await get("/v1/connections?q=QUIET")).body.connections.map((c: { id: string }) => c.id)).toEqual([empty]);
  expect((await get(`/v1/connections?q=${stuck.slice(0, 8)}`)).body.connections.map((c: { id: string }) => c.id)).toEqual([stuck]);
  expect((await get("/v1/connections?q=ws-stu")).body.connections.map((c: { id: string }) => c.id)).toEqual([stuck]);

  for (const bad of ["status=credential_error", "state=broken", "cursor=nope", "limit=0"]) {
    const res = await get(`/v1/connections?${bad}`);
    expect([bad, res.status]).toEqual([bad, 400]);
  }
  expect((await get(`/v1/usage?connectionId=${empty}&from=${day(-1)}&to=${day(0)}&colour=red`)).status).toBe(400);
});
