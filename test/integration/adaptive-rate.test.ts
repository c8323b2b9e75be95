import * as producer from "../../src/producer.js";
import { RedisRequestRateCap } from "../../src/replicate/rate-cap.js";
import { actualUsage, expectedUsage, generatePredictions } from "../../dev/predictions.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";
import { deleteKeys, redisConnection, uniquePrefix } from "../support/redis.js";

const redis = redisConnection();
const prefix = uniquePrefix();
let h: Harness;
beforeAll(async () => {
  // The service's default cap (10/s) against a fake that throttles like an account low on credit.
  // One window: at 1 request/s, splitting would only spend requests on windows' partial last pages,
  // and the page count asserted below is then exactly the account's.
  h = await createHarness({ REPLICATE_REQUESTS_PER_SECOND: "10", BACKFILL_PARALLELISM: "1" });
});
afterAll(async () => {
  await h.close();
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

test("a 429 halves the shared rate (or drops it to the server's interval), and quiet periods raise it back, never above the cap", async () => {
  const token = "r8_adaptiveToken00000000000";
  const workerA = new RedisRequestRateCap(redis, 10, prefix, { quietMs: 100 });
  const workerB = new RedisRequestRateCap(redis, 10, prefix, { quietMs: 100 });
  expect(await workerA.learnedRate(token)).toEqual({ requestsPerSecond: 10, configuredPerSecond: 10, changedAt: null });

  // No server interval to go by (a default Retry-After): halve.
  expect(await workerA.throttled(token, { seconds: 1, source: "default" })).toBe(5);
  expect((await workerB.learnedRate(token)).requestsPerSecond).toBe(5);
  // A Retry-After of 1 s says only "under a second": halve.
  expect(await workerA.throttled(token, { seconds: 1, source: "header" })).toBe(2.5);
  // The server said one request per 4 s: that is lower than half, so it wins.
  expect(await workerB.throttled(token, { seconds: 4, source: "body" })).toBe(0.25);
  expect((await workerA.learnedRate(token)).requestsPerSecond).toBe(0.25);
  // No worker sends before the server allows it again.
  await expect(workerA.acquire(token)).rejects.toMatchObject({ retryAfterSource: "local_cap" });

  // Quiet periods raise it by 1.25× at a time until the configured cap, and no further.
  const seen: number[] = [];
  await waitFor(
    "raised back to the cap",
    async () => {
      await workerA.acquire(token).catch(() => undefined);
      const rate = (await workerB.learnedRate(token)).requestsPerSecond;
      seen.push(rate);
      return rate;
    },
    (rate) => rate === 10,
    20_000,
    50,
  );
  expect(Math.max(...seen)).toBe(10);
  const raises = [...new Set(seen)];
  raises.slice(1).forEach((r, i) => expect(r).toBeCloseTo(Math.min(10, raises[i]! * 1.25), 9));
});

test("once per round: a 429 answering a request reserved before the pace was last lowered does not lower it again", async () => {
  const token = "r8_onePerRoundToken00000000";
  const cap = new RedisRequestRateCap(redis, 10, prefix, { quietMs: 60_000 });
  const redisNow = async () => {
    const [seconds, micros] = await redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };
  // Two requests in flight at the configured pace, e.g. a run's predictions and trainings.
  const inFlight = (await redisNow()) - 1;
  expect(await cap.throttled(token, { seconds: 1, source: "header" }, inFlight)).toBe(5);
  expect(await cap.throttled(token, { seconds: 1, source: "header" }, inFlight)).toBe(5);
  // Its server interval still applies when it is lower.
  expect(await cap.throttled(token, { seconds: 4, source: "body" }, inFlight)).toBe(0.25);
  // A request sent at the lowered pace and throttled again lowers it further, as does one whose slot is unknown.
  expect(await cap.throttled(token, { seconds: 4, source: "body" }, await redisNow())).toBe(0.125);
  expect(await cap.throttled(token, { seconds: 1, source: "default" })).toBeCloseTo(0.0625, 2);
});

// Scaled 5× to keep the test short: 6 requests per 12 s (one per 2 s) with a burst of 1, the same
// burst-to-rate ratio, and a Retry-After of 2 s instead of 10 s.
test("throttled to 6 requests/min with a burst of 1 (scaled 5×), a 10-page backfill completes with at most 3 429s", async () => {
  const token = "r8_lowCreditAccount000000000";
  const predictions = generatePredictions({ count: 100, days: 5, seed: 5 });
  h.fake.addAccount(token, { type: "user", username: "low-credit" }, predictions);
  h.fake.pageSize = 10;
  h.fake.rateLimit = { requests: 6, perMs: 12_000, burst: 1 };
  try {
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-rate", token });
    await waitForSyncedSince(h, id, null, 100_000);
    const mine = h.fake.requests.filter((r) => r.authorization === `Bearer ${token}`);
    expect(mine.filter((r) => r.endpoint === "predictions" && r.status === 200)).toHaveLength(10);
    // The run's own pages; the deployments read beside it is optional, unpaced, and recorded apart.
    const throttled = mine.filter((r) => r.endpoint === "predictions" && r.status === 429).length;
    expect(throttled).toBeGreaterThanOrEqual(1);
    expect(throttled).toBeLessThanOrEqual(3);
    expect(await actualUsage(h.ctx.db, id)).toEqual(expectedUsage(predictions));
    expect((await h.ctx.replicate.learnedRate(token))?.requestsPerSecond).toBeLessThanOrEqual(0.5);
    // The event log says what the token is paced at. The run starts a second or more after the
    // account check, when Replicate's wait can read "1 second" (which only halves the pace): from
    // the next 429 on, the pace is the server's interval.
    const events = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: "rate_limited" }, orderBy: { id: "asc" } });
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(e.message).toMatch(/paced at [\d.]+ requests\/min/);
    expect(events.at(-1)!.message).toMatch(/paced at 30 requests\/min/);
  } finally {
    h.fake.rateLimit = null;
  }
}, 120_000);
