import type { Redis } from "ioredis";
import { RateLimitError } from "../errors.js";
import { tokenFingerprint } from "../vault.js";
import type { RetryAfter } from "./retry-after.js";

/** Paces requests made with one token, across every worker process. */
export interface RequestRateCap {
  /** Waits for the token's next slot; returns when the slot was reserved (ms, on the cap's clock), for `throttled`. */
  acquire(token: string): Promise<number>;
  /**
   * Replicate answered 429: lower this token's rate. Returns the new requests per second.
   * `reservedAt` is what `acquire` returned for the request it answers (unknown: treated as recent).
   */
  throttled(token: string, retryAfter: RetryAfter, reservedAt?: number): Promise<number>;
  learnedRate(token: string): Promise<LearnedRate>;
}

// A rate lowered by 429s is raised by this factor after `quietMs` without one: from a halving back to the cap in about 3 quiet periods.
const RAISE_FACTOR = 1.25;
/** Never slower than one request a minute. */
const FLOOR_PER_SECOND = 1 / 60;

// Waits shorter than this are slept inline; longer ones become a RateLimitError so the job is
// delayed instead of holding a worker slot.
const MAX_INLINE_WAIT_MS = 2000;
// The learned rate is forgotten after a day without requests: the account may have been topped up.
const LEARNED_TTL_MS = 86_400_000;

// GCRA with no burst: each request reserves the next slot `interval` ms after the previous one, on Redis's clock. Fixed
// one-second windows let a window's worth through at the end of one and again at the start of the next (38 requests in a
// second for a cap of 20); evenly spaced slots never exceed the cap in any second. The interval follows the learned rate
// (KEYS[2]), raised toward the cap after a quiet period, with 10% headroom: timers fire late, requests queue in sockets.
// Returns {wait before the slot, or -wait (nothing reserved) over the maximum; millirequests per second; when reserved}.
const RESERVE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local rate = math.min(cap, tonumber(redis.call('HGET', KEYS[2], 'rate') or cap))
if rate < cap and now - tonumber(redis.call('HGET', KEYS[2], 'changed') or '0') >= tonumber(ARGV[3]) then
  rate = math.min(cap, rate * tonumber(ARGV[4]))
  redis.call('HSET', KEYS[2], 'rate', rate, 'changed', now)
  redis.call('PEXPIRE', KEYS[2], ${LEARNED_TTL_MS})
end
local interval = math.ceil(1100 / rate)
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local wait = slot - now
if wait > tonumber(ARGV[2]) then return {-wait, math.floor(rate * 1000), now} end
redis.call('SET', KEYS[1], slot + interval, 'PX', wait + interval + 1000)
return {wait, math.floor(rate * 1000), now}`;

// AIMD: a 429 halves the rate, or sets it to one request per Retry-After when lower (with a burst of 1, Retry-After is the
// server's own interval: 6/min says about 10 s), and keeps every worker off the token until then. Once per round: a 429 for
// a request reserved before the rate was last lowered (ARGV[5]; -1 unknown) does not halve again (windows in flight together
// would halve it twice); its Retry-After still applies. Returns millirequests per second (Lua returns integers).
const THROTTLED = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local rate = math.min(cap, tonumber(redis.call('HGET', KEYS[2], 'rate') or cap))
local before = rate
local reservedAt = tonumber(ARGV[5])
if reservedAt < 0 or reservedAt >= tonumber(redis.call('HGET', KEYS[2], 'lowered') or '0') then rate = rate / 2 end
local retryMs = tonumber(ARGV[2])
if tonumber(ARGV[3]) == 1 then rate = math.min(rate, 1000 / retryMs) end
rate = math.max(rate, tonumber(ARGV[4]))
redis.call('HSET', KEYS[2], 'rate', rate, 'changed', now)
if rate < before then redis.call('HSET', KEYS[2], 'lowered', now) end
redis.call('PEXPIRE', KEYS[2], ${LEARNED_TTL_MS})
local slot = math.max(now + retryMs, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], slot, 'PX', slot - now + 1000)
return math.floor(rate * 1000)`;

/** Requests per second as per minute, for messages. */
export const perMinute = (perSecond: number) => Math.round(perSecond * 60 * 100) / 100;

export interface LearnedRate {
  /** What this token is paced at now (the configured cap until a 429 lowers it). */
  requestsPerSecond: number;
  configuredPerSecond: number;
  /** When a 429 or a quiet period last changed it; null when it never did (or was forgotten). */
  changedAt: Date | null;
}

/** The scripts as commands of the Redis client: sent by SHA (EVALSHA), not as their text on every request. */
type ScriptedRedis = Redis & Record<"rateCapReserve" | "rateCapThrottled", (...args: (string | number)[]) => Promise<unknown>>;

export class RedisRequestRateCap implements RequestRateCap {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly requestsPerSecond: number,
    private readonly keyPrefix: string,
    private readonly options: { quietMs: number } = { quietMs: 60_000 },
  ) {
    redis.defineCommand("rateCapReserve", { numberOfKeys: 2, lua: RESERVE_SLOT });
    redis.defineCommand("rateCapThrottled", { numberOfKeys: 2, lua: THROTTLED });
    this.redis = redis as ScriptedRedis;
  }

  // Redis keys carry a hash of the token, never the token.
  private keys(token: string): [string, string] {
    const key = `${this.keyPrefix}:ratecap:${tokenFingerprint(token)}`;
    return [key, `${key}:learned`];
  }

  async acquire(token: string): Promise<number> {
    const [slot, learned] = this.keys(token);
    const args = [this.requestsPerSecond, MAX_INLINE_WAIT_MS, this.options.quietMs, RAISE_FACTOR];
    const [wait, milli, reservedAt] = (await this.redis.rateCapReserve(slot, learned, ...args)) as [number, number, number];
    if (wait < 0) {
      const paced = perMinute(milli / 1000);
      const message = `local request cap reached for this token (paced at ${paced} requests/min)`;
      throw new RateLimitError(message, Math.ceil(-wait / 1000), "local_cap", paced);
    }
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return reservedAt;
  }

  async throttled(token: string, retryAfter: RetryAfter, reservedAt = -1): Promise<number> {
    // Only a server-given wait of 2 s or more says something about its rate: waits are whole seconds
    // of at least 1, so "1" means anything under a second (a full-speed account says that too), and a
    // default Retry-After is our own guess. Otherwise halve.
    const hinted = retryAfter.source !== "default" && retryAfter.seconds >= 2 ? 1 : 0;
    const args = [this.requestsPerSecond, retryAfter.seconds * 1000, hinted, FLOOR_PER_SECOND, reservedAt];
    const milli = Number(await this.redis.rateCapThrottled(...this.keys(token), ...args));
    return milli / 1000;
  }

  /**
   * Deletes the pacing state of every token but `stored` (the tokens connections still hold). The
   * keys name a token's hash, not a connection, so once a token is deleted this is the only way
   * to find its keys (an erasure leaves none of them behind).
   */
  async forgetAllBut(stored: Iterable<string>): Promise<number> {
    const kept = new Set([...stored].map(tokenFingerprint));
    const head = `${this.keyPrefix}:ratecap:`;
    let deleted = 0;
    for await (const keys of this.redis.scanStream({ match: `${head}*`, count: 500 })) {
      const orphans = (keys as string[]).filter((k) => !kept.has(k.slice(head.length).split(":")[0]!));
      if (orphans.length) deleted += await this.redis.del(...orphans);
    }
    return deleted;
  }

  /** The rate this token is paced at, for health views and the event log. */
  async learnedRate(token: string): Promise<LearnedRate> {
    const state = await this.redis.hgetall(this.keys(token)[1]);
    const rate = state.rate === undefined ? this.requestsPerSecond : Math.min(this.requestsPerSecond, Number(state.rate));
    return {
      requestsPerSecond: rate,
      configuredPerSecond: this.requestsPerSecond,
      changedAt: state.changed === undefined ? null : new Date(Number(state.changed)),
    };
  }
}
