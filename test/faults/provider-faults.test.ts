import * as producer from "../../src/producer.js";
import { recordScenario } from "../support/fault-summary.js";
import type { Fault, FakePrediction } from "../../dev/fake-replicate.js";
import { connect, startApi, type Api } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { captureLogs, dumpDatabase, findSecrets } from "../support/leaks.js";
import { generatePredictions } from "../../dev/predictions.js";
import { dumpRedis } from "../support/redis.js";
import { eventCounts, expectExact, checkpointPages, waitForSyncedSince } from "../support/sync-checks.js";

// What Replicate can do wrong, one connection per scenario, connected through the real HTTP API.
// Every scenario ends with usage equal to the fake server's ground truth.

const TIMEOUT = 120_000;
let h: Harness;
let api: Api;
const logs = captureLogs();
const tokens: string[] = [];

beforeAll(async () => {
  h = await createHarness({ REPLICATE_TIMEOUT_MS: "400", JOB_ATTEMPTS: "6", JOB_BACKOFF_MS: "20" });
  api = await startApi(h);
});
afterAll(async () => {
  logs.stop();
  await api.close();
  await h.close();
});

/** Connects through the HTTP API, remembering the token for the leak check at the end. */
async function connectVia(name: string, predictions: FakePrediction[], faults: Fault[] = []) {
  const connection = await connect(h, { name, predictions, faults }, api);
  tokens.push(connection.token);
  return connection;
}

const messages = async (id: string, kind: string) =>
  (await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: kind as never }, orderBy: { id: "asc" } })).map(
    (e) => e.message,
  );

test.each([
  {
    scenario: "5xx burst",
    injected: "HTTP 500, 502, 503, 503, 504, 500 in a row",
    faults: [500, 502, 503, 503, 504, 500].map((status): Fault => ({ kind: "status", status })),
    expectEvent: /HTTP 50\d.*will retry/,
  },
  {
    scenario: "timeouts",
    injected: "3 pages answered after 1.5 s (timeout 0.4 s)",
    faults: Array.from({ length: 3 }, (): Fault => ({ kind: "delay", ms: 1500 })),
    expectEvent: /ETIMEDOUT/,
  },
  {
    scenario: "truncated JSON",
    injected: "2 bodies cut in half",
    faults: [{ kind: "truncated-json" }, { kind: "truncated-json" }] as Fault[],
    expectEvent: /not valid JSON/,
  },
  {
    scenario: "page violating the schema",
    injected: "a page whose next is a number and results not a list",
    faults: [{ kind: "schema-violation" }] as Fault[],
    expectEvent: /does not match the expected shape/,
  },
])(
  "$scenario: retried with backoff, one run, exact",
  async ({ scenario, injected, faults, expectEvent }) => {
    const truth = generatePredictions({ count: 900, days: 10, seed: faults.length * 7, idPrefix: scenario.slice(0, 3) });
    const { id } = await connectVia(scenario.replace(/\W/g, ""), truth, faults);
    await waitForSyncedSince(h, id, null);
    await expectExact(h, id, truth);
    const errors = await messages(id, "provider_error");
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join("\n")).toMatch(expectEvent);
    expect(await eventCounts(h, id)).toMatchObject({ sync_started: 1, sync_completed: 1 });
    recordScenario({
      scenario,
      injected,
      outcome: `${errors.length} provider_error events; 1 run; exact`,
    });
  },
  TIMEOUT,
);

test("unknown statuses are counted under other, not dropped", async () => {
  const truth = generatePredictions({ count: 600, days: 5, seed: 77, idPrefix: "u" }).map((p, i) =>
    i % 5 === 0 ? { ...p, status: i % 2 ? "queued" : "rebooting" } : p,
  );
  const { id } = await connectVia("unknownstatus", truth);
  await waitForSyncedSince(h, id, null);
  await expectExact(h, id, truth);
  const other = await h.ctx.db.usageBucket.aggregate({ where: { connectionId: id }, _sum: { other: true } });
  expect(other._sum.other).toBe(120);
  recordScenario({ scenario: "unknown statuses", injected: "120 of 600 with queued/rebooting", outcome: "counted as other; exact" });
});

test("duplicate and overlapping pages never double count", async () => {
  const truth = generatePredictions({ count: 1_500, days: 10, seed: 78, idPrefix: "d" });
  const dup: Fault = { kind: "duplicate-results" };
  const { id, token } = await connectVia("duplicates", truth, [dup, dup, dup, dup, dup]);
  const first = await waitForSyncedSince(h, id, null);
  // A second run overlaps the first (look-back window) and its pages repeat rows too.
  const newer = generatePredictions({ count: 150, days: 0.01, seed: 79, idPrefix: "dn" });
  h.fake.upsertPredictions(token, newer);
  h.fake.inject(token, "predictions", dup, dup);
  await producer.syncNow(h.ctx, id);
  await waitForSyncedSince(h, id, first.lastSyncedAt);
  await expectExact(h, id, [...truth, ...newer]);
  recordScenario({
    scenario: "duplicate and overlapping pages",
    injected: "7 pages repeating half their rows; overlapping second run",
    outcome: "exact",
  });
});

test("a next link to another host is never followed; an event says why; the next run completes", async () => {
  const truth = generatePredictions({ count: 800, days: 5, seed: 80, idPrefix: "x" });
  const { id, token } = await connectVia("foreignnext", truth, [{ kind: "foreign-next" }]);
  await waitFor(
    "refusal event",
    () => messages(id, "foreign_link_refused"),
    (m) => m.length === 1,
  );
  expect((await messages(id, "foreign_link_refused"))[0]).toMatch(/attacker\.invalid/);
  expect(h.fake.requests.filter((r) => r.authorization === `Bearer ${token}`).every((r) => r.url.startsWith("/v1/"))).toBe(true);
  await producer.syncNow(h.ctx, id);
  await waitForSyncedSince(h, id, null);
  await expectExact(h, id, truth);
  expect(await eventCounts(h, id)).toMatchObject({ foreign_link_refused: 1, sync_failed: 1, sync_completed: 1 });
  recordScenario({
    scenario: "foreign next link",
    injected: "next → http://attacker.invalid",
    outcome: "not followed; foreign_link_refused + sync_failed; next run exact",
  });
});

test("an empty account syncs to no rows and says so", async () => {
  const { id } = await connectVia("emptyaccount", []);
  await waitForSyncedSince(h, id, null);
  expect(await h.ctx.db.usageBucket.count({ where: { connectionId: id } })).toBe(0);
  expect((await messages(id, "sync_completed"))[0]).toMatch(/^sync finished: 0 predictions/);
  recordScenario({ scenario: "empty account", injected: "no predictions", outcome: "sync_completed with 0 predictions; no rows" });
});

test(
  "a 429 storm on one connection (body, header seconds, HTTP date) while five others finish first",
  async () => {
    const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toUTCString();
    const storm: Fault[] = [
      { kind: "status", status: 429, body: JSON.stringify({ detail: "Request was throttled. Expected available in 1 second." }) },
      { kind: "status", status: 429, headers: { "retry-after": "1" } },
      { kind: "status", status: 429, headers: { "retry-after": inSeconds(3) } },
      { kind: "status", status: 429, body: JSON.stringify({ detail: "Request was throttled. Expected available in 2 seconds." }) },
      { kind: "status", status: 429, headers: { "retry-after": "2" } },
    ];
    // Two pages: after the storm the token is paced at what it learned (one request per ~13 s).
    const stormed = await connectVia("storm", generatePredictions({ count: 150, days: 5, seed: 81, idPrefix: "s" }), storm);
    const others = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const truth = generatePredictions({ count: 2_000, days: 10, seed: 90 + i, idPrefix: `o${i}` });
        return { ...(await connectVia(`calm${i}`, truth)), truth };
      }),
    );
    for (const o of others) {
      await waitForSyncedSince(h, o.id, null);
      await expectExact(h, o.id, o.truth);
      expect((await eventCounts(h, o.id)).rate_limited).toBeUndefined();
    }
    await waitForSyncedSince(h, stormed.id, null);
    await expectExact(h, stormed.id, h.fake.predictions(stormed.token));
    const completedAt = async (id: string) =>
      (await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: id, kind: "sync_completed" } })).occurredAt.getTime();
    const stormDone = await completedAt(stormed.id);
    for (const o of others) expect(await completedAt(o.id)).toBeLessThan(stormDone);
    const limited = await h.ctx.db.integrationEvent.findMany({
      where: { connectionId: stormed.id, kind: "rate_limited", httpStatus: 429 },
      orderBy: { id: "asc" },
    });
    expect(limited.map((e) => (e.detail as { retryAfterSource: string }).retryAfterSource)).toEqual([
      "body",
      "header",
      "header",
      "body",
      "header",
    ]);
    expect(limited.map((e) => e.retryAfterSeconds)).toEqual([1, 1, expect.any(Number), 2, 2]);
    expect(limited.every((e) => e.httpStatus === 429)).toBe(true);
    recordScenario({
      scenario: "429 storm on one of six connections",
      injected: "5 × 429 (body 1s, header 1s, HTTP-date ~3s, body 2s, header 2s)",
      outcome: "5 others finished first with no delay events; stormed one paced at its learned rate, exact after its waits",
    });
  },
  TIMEOUT,
);

test(
  "disconnect while jobs are queued and running; reconnect with a new token; replace a token mid-run",
  async () => {
    h.fake.pageLatencyMs = 5;
    const truth = generatePredictions({ count: 20_000, days: 30, seed: 82, idPrefix: "r" });
    const { id, token } = await connectVia("disconnectme", truth);
    await waitFor(
      "backfill under way",
      () => checkpointPages(h, id),
      (p) => p >= 10,
    );
    const removed = await api.call("DELETE", `/v1/connections/${id}`);
    const disconnectedAt = Date.now();
    expect(removed.status).toBe(204);
    expect((await h.ctx.db.connection.findUniqueOrThrow({ where: { id } })).tokenCiphertext).toBeNull();
    // In flight at the moment of the disconnect: at most the running page and the one fetched ahead.
    await waitFor(
      "its jobs drained",
      async () =>
        (await h.ctx.queues.queue("sync").getJobs(["active", "waiting", "delayed"])).filter((j) => j?.data.connectionId === id).length,
      (n) => n === 0,
    );
    const ledgerAfter = await h.ctx.db.predictionRecord.count({ where: { connectionId: id } });
    // A job that read the token just before the disconnect may still make its page request and the
    // one read-ahead request; nothing after that, and nothing they return is written.
    const lateRequests = h.fake.requests.filter((r) => r.authorization === `Bearer ${token}` && r.at > disconnectedAt).length;
    expect(lateRequests).toBeLessThanOrEqual(2);
    expect(ledgerAfter).toBeLessThan(truth.length);

    // Reconnect: the same Replicate account, a new token, a new connection that takes over the first
    // one's history and backfills the rest.
    const newToken = "r8_reconnectedToken000000000000000";
    tokens.push(newToken);
    h.fake.addAccount(newToken, { type: "organization", username: "disconnectme" }, truth);
    const again = await api.call("POST", "/v1/connections", { workspaceId: "ws-disconnectme", token: newToken });
    await waitForSyncedSince(h, again.body.id, null, 90_000);
    await expectExact(h, again.body.id, truth);
    expect(await h.ctx.db.predictionRecord.count({ where: { connectionId: id } })).toBe(0);
    const moved = await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: again.body.id, kind: "history_moved" } });
    expect(moved.detail).toMatchObject({ from: id, ledgerRows: ledgerAfter });

    // Replace the token of a connection mid-run: the run resumes under the new token and is exact.
    const replaced = await connectVia("replaceme", generatePredictions({ count: 8_000, days: 20, seed: 83, idPrefix: "q" }));
    await waitFor(
      "backfill under way",
      () => checkpointPages(h, replaced.id),
      (p) => p >= 5,
    );
    const rotated = "r8_rotatedToken0000000000000000000";
    tokens.push(rotated);
    h.fake.addAccount(rotated, { type: "organization", username: "replaceme" }, h.fake.predictions(replaced.token));
    h.fake.removeToken(replaced.token); // the old token is revoked at Replicate
    expect((await api.call("PUT", `/v1/connections/${replaced.id}/token`, { token: rotated })).status).toBe(202);
    await waitForSyncedSince(h, replaced.id, null, 90_000);
    await expectExact(h, replaced.id, h.fake.predictions(rotated));
    h.fake.pageLatencyMs = 0;
    recordScenario({
      scenario: "disconnect / reconnect / replace token mid-run",
      injected: `DELETE at page ≥10 of 200; new connection with new token; PUT token at page ≥5 of 80`,
      outcome: `${lateRequests} requests (≤ 2) after disconnect; ${ledgerAfter} rows kept, none added; reconnect and replaced runs exact`,
    });
  },
  TIMEOUT,
);

test("secrets: no token in any Redis key or value, log line, API response, or table but the ciphertext", async () => {
  for (const { id } of await h.ctx.db.connection.findMany()) {
    await api.call("GET", `/v1/connections/${id}`);
    await api.call("GET", `/v1/connections/${id}/events?limit=200`);
  }
  await api.call("GET", "/v1/usage?groupBy=model");
  const places = {
    redis: await dumpRedis(h.ctx.redis, h.config.queuePrefix),
    logs: logs.lines.join("\n"),
    "API responses": api.responses.join("\n"),
    database: await dumpDatabase(h.t.url),
  };
  expect(findSecrets(tokens, places)).toEqual([]);
  expect(logs.lines.length).toBeGreaterThan(50);
  recordScenario({
    scenario: "secrets after every scenario",
    injected: `${tokens.length} tokens; ${api.responses.length} API responses, ${logs.lines.length} log lines`,
    outcome: "no token outside tokenCiphertext",
  });
});
