import { RedisRequestRateCap } from "../../src/replicate/rate-cap.js";
import { dumpRedis, deleteKeys, redisConnection, uniquePrefix } from "../support/redis.js";

const redis = redisConnection();
const prefix = uniquePrefix();
afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

test("two workers sharing a token never exceed the per-token cap in any second, and Redis never sees the token", async () => {
  const token = "r8_rateCapToken1234567890";
  const workerA = new RedisRequestRateCap(redis, 5, prefix);
  const workerB = new RedisRequestRateCap(redis, 5, prefix);
  const stamps: number[] = [];
  const start = Date.now();
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => (i % 2 ? workerA : workerB).acquire(token).then(() => stamps.push(Date.now() - start))),
  );
  stamps.sort((a, b) => a - b);
  // 5 per second means one slot every 220 ms (10% headroom): never more than 5 in any one-second window.
  const inAnySecond = stamps.map((s) => stamps.filter((x) => x >= s && x < s + 1000).length);
  expect(Math.max(...inAnySecond)).toBeLessThanOrEqual(5);
  expect(stamps[9]!).toBeGreaterThanOrEqual(1950); // the 10th slot, 9 × 220 ms after the first
  const contents = await dumpRedis(redis, prefix);
  expect(contents).toContain(`${prefix}:ratecap`);
  expect(contents).not.toContain("rateCapToken");
});

test("a wait longer than a job should hold its slot becomes a RateLimitError, and reserves nothing", async () => {
  const cap = new RedisRequestRateCap(redis, 1, `${prefix}-long`);
  // Slots 1.1 s apart: the first two are worth waiting for; the third and fourth would wait 2.2 s.
  const outcomes = await Promise.allSettled(Array.from({ length: 4 }, () => cap.acquire("r8_longWaitToken")));
  const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected").map((o) => o.reason);
  expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(2);
  // Had the third reserved its slot, the fourth would have been told 4 s.
  expect(rejected).toEqual([
    expect.objectContaining({ code: "rate_limited", retryAfterSeconds: 3 }),
    expect.objectContaining({ retryAfterSeconds: 3 }),
  ]);
});
