import { RedisRequestRateCap } from "../../src/replicate/rate-cap.js";
import { dumpRedis, deleteKeys, redisConnection, uniquePrefix } from "../support/redis.js";

const redis = redisConnection();
const prefix = uniquePrefix();
afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

test("two workers sharing a token stay under the per-token cap, and Redis never sees the token", async () => {
  const token = "r8_rateCapToken1234567890";
  const workerA = new RedisRequestRateCap(redis, 5, prefix);
  const workerB = new RedisRequestRateCap(redis, 5, prefix);
  const stamps: number[] = [];
  const start = Date.now();
  await Promise.all(
    Array.from({ length: 12 }, (_, i) => (i % 2 ? workerA : workerB).acquire(token).then(() => stamps.push(Date.now() - start))),
  );
  stamps.sort((a, b) => a - b);
  // 12 requests at 5 per 1-second window: 5 at once, 5 in the next window, 2 in the third.
  expect(stamps[4]!).toBeLessThan(1000);
  expect(stamps[5]!).toBeGreaterThanOrEqual(900);
  expect(stamps[11]!).toBeGreaterThanOrEqual(1900);
  const contents = await dumpRedis(redis, prefix);
  expect(contents).toContain(`${prefix}:ratecap`);
  expect(contents).not.toContain("rateCapToken");
});
