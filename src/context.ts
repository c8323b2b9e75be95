import { Redis } from "ioredis";
import type { Config } from "./config.js";
import { createDb, type Db } from "./db/client.js";
import { ServiceMetrics } from "./metrics.js";
import { JobQueues, jobOptions } from "./queue/queues.js";
import { ReplicateClient } from "./replicate/client.js";
import { RedisRequestRateCap } from "./replicate/rate-cap.js";
import { holdsToken } from "./repositories/connections.js";
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
  metrics: ServiceMetrics;
  close(): Promise<void>;
}

export function createContext(
  config: Config,
  overrides: { retryBaseMs?: number; retries?: number; signal?: AbortSignal } = {},
): AppContext {
  const db = createDb(config.databaseUrl, config.sync.concurrency + 4);
  // BullMQ workers need maxRetriesPerRequest: null (they wait for Redis); the same connection serves
  // the rate cap. Enqueues and reads (the API, bull-board, metrics) fail within seconds instead, so a
  // request never hangs while Redis is down.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const commands = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  const queues = new JobQueues(
    commands,
    config.queuePrefix,
    jobOptions(config.jobs.attempts, config.jobs.backoffMs),
    config.sync.intervalMinutes,
  );
  const vault = new TokenVault(config.encryption.keys, config.encryption.currentKeyId);
  const replicate = new ReplicateClient({
    baseUrl: config.replicate.baseUrl,
    timeoutMs: config.replicate.timeoutMs,
    maxResponseBytes: config.replicate.maxResponseBytes,
    // After a disconnect or a token replacement, the client's own retries stop.
    stillWanted: (token, connectionId) => holdsToken(db, vault, connectionId, token),
    rateCap: new RedisRequestRateCap(redis, config.replicate.requestsPerSecond, config.queuePrefix),
    ...overrides,
  });
  return {
    config,
    db,
    redis,
    queues,
    vault,
    replicate,
    metrics: new ServiceMetrics(queues, db),
    prefetcher: new PagePrefetcher(config.sync.concurrency * 4),
    async close() {
      await queues.close();
      redis.disconnect();
      commands.disconnect();
      await db.$disconnect();
    },
  };
}
