import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A unique key/queue prefix per test, so tests never see each other's keys. */
export function uniquePrefix(): string {
  return `rus-test-${randomBytes(5).toString("hex")}`;
}

/** BullMQ needs maxRetriesPerRequest: null on connections used by workers. */
export function redisConnection(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

/** Every key under the prefix and its value (any type), as text. */
export async function dumpRedis(redis: Redis, prefix: string): Promise<string> {
  const keys = await redis.keys(`${prefix}*`);
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    const value =
      type === "string"
        ? await redis.get(key)
        : type === "hash"
          ? JSON.stringify(await redis.hgetall(key))
          : type === "list"
            ? JSON.stringify(await redis.lrange(key, 0, -1))
            : type === "set"
              ? JSON.stringify(await redis.smembers(key))
              : type === "zset"
                ? JSON.stringify(await redis.zrange(key, 0, -1, "WITHSCORES"))
                : type === "stream"
                  ? JSON.stringify(await redis.xrange(key, "-", "+"))
                  : "";
    parts.push(`${key} ${value}`);
  }
  return parts.join("\n");
}

export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}
