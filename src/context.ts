import { Redis } from "ioredis";
import type { Config } from "./config.js";
import { createDb, type Db } from "./db/client.js";
import { ServiceMetrics } from "./metrics.js";
import { JobQueues, jobOptions } from "./queue/queues.js";
import { ReplicateClient } from "./replicate/client.js";
import { RedisRequestRateCap } from "./replicate/rate-cap.js";
import { PagePrefetcher } from "./sync/prefetch.js";
import { TokenVault } from "./vault.js";

/** Everything the lifecycle steps, the producer and the API need, built once per process. */
export interface AppContext {
  config: Config;
  db: Db;
  redis: Redis;
  queues: JobQueues;
  vault: TokenVault;
  replicate: ReplicateClient;
  prefetcher: PagePrefetcher;
  /** The per-token request pacing the client uses, shared by every worker through Redis. */
  rateCap: RedisRequestRateCap;
  metrics: ServiceMetrics;
  close(): Promise<void>;
}

export function createContext(config: Config, overrides: { retryBaseMs?: number; retries?: number } = {}): AppContext {
  const db = createDb(config.databaseUrl, config.sync.concurrency + 4);
  // BullMQ workers need maxRetriesPerRequest: null; the same connection serves the rate cap.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queues = new JobQueues(
    redis,
    config.queuePrefix,
    jobOptions(config.jobs.attempts, config.jobs.backoffMs),
    config.sync.intervalMinutes,
  );
  const rateCap = new RedisRequestRateCap(redis, config.replicate.requestsPerSecond, config.queuePrefix);
  const vault = new TokenVault(config.encryption.keys, config.encryption.currentKeyId);
  const replicate = new ReplicateClient({
    baseUrl: config.replicate.baseUrl,
    timeoutMs: config.replicate.timeoutMs,
    maxResponseBytes: config.replicate.maxResponseBytes,
    rateCap,
    ...overrides,
  });
  return {
    config,
    db,
    redis,
    queues,
    vault,
    replicate,
    rateCap,
    metrics: new ServiceMetrics(queues, db),
    prefetcher: new PagePrefetcher(config.sync.concurrency * 4),
    async close() {
      await queues.close();
      redis.disconnect();
      await db.$disconnect();
    },
  };
}
