import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { RateLimitError } from "../errors.js";

/** Paces requests made with one token, across every worker process. */
export interface RequestRateCap {
  acquire(token: string): Promise<void>;
}

// Waits shorter than this are slept inline; longer ones become a RateLimitError so the job is
// delayed instead of holding a worker slot.
const MAX_INLINE_WAIT_MS = 2000;

/** Redis keys carry a hash of the token, never the token. */
export function tokenFingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 32);
}

export class RedisRequestRateCap implements RequestRateCap {
  private readonly limiter: RateLimiterRedis;

  constructor(redis: Redis, requestsPerSecond: number, keyPrefix: string) {
    this.limiter = new RateLimiterRedis({ storeClient: redis, points: requestsPerSecond, duration: 1, keyPrefix: `${keyPrefix}:ratecap` });
  }

  async acquire(token: string): Promise<void> {
    const key = tokenFingerprint(token);
    for (;;) {
      try {
        await this.limiter.consume(key);
        return;
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        if (err.msBeforeNext > MAX_INLINE_WAIT_MS) {
          throw new RateLimitError("local request cap reached for this token", Math.ceil(err.msBeforeNext / 1000), "local_cap");
        }
        await new Promise((resolve) => setTimeout(resolve, err.msBeforeNext + 1));
      }
    }
  }
}
