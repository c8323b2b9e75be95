import { Redis } from "ioredis";
import type { Config, ProducerConfig } from "./config.js";
import { createDb, type Db } from "./db/client.js";
import { moduleLogger } from "./logger.js";
import { ServiceMetrics } from "./metrics.js";
import { JobQueues, jobOptions } from "./queue/queues.js";
import { ReplicateClient } from "./replicate/client.js";
import { RedisRequestRateCap } from "./replicate/rate-cap.js";
import { holdsToken, workspaceOf } from "./repositories/connections.js";
import { PagePrefetcher } from "./sync/prefetch.js";
import { TokenVault } from "./vault.js";

const log = moduleLogger("context");

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

/** The stores the producer and the service share: Postgres, Redis and the queues jobs are enqueued on. */
export interface Stores {
  db: Db;
  redis: Redis;
  queues: JobQueues;
  close(): Promise<void>;
}

export function openStores(config: ProducerConfig, poolSize: number): Stores {
  const db = createDb(config.databaseUrl, poolSize);
  // BullMQ workers need maxRetriesPerRequest: null (they wait for Redis); the same connection serves
  // the rate cap. Enqueues and reads (the API, bull-board, metrics) fail within seconds instead, so a
  // request never hangs while Redis is down.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const commands = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  // Reconnect attempts fail every few seconds while Redis is down; /readyz and the failing requests say so.
  for (const client of [redis, commands]) client.on("error", (err) => log.debug("redis connection error", { error: err }));
  const queues = new JobQueues(
    commands,
    config.queuePrefix,
    jobOptions(config.jobs.attempts, config.jobs.backoffMs),
    config.sync.intervalMinutes,
    // Job names carry the workspace so an operator can find one in the queue dashboard.
    (connectionId) => workspaceOf(db, connectionId),
  );
  return {
    db,
    redis,
    queues,
    async close() {
      await queues.close();
      redis.disconnect();
      commands.disconnect();
      await db.$disconnect();
    },
  };
}

export function createContext(
  config: Config,
  overrides: { retryBaseMs?: number; retries?: number; signal?: AbortSignal } = {},
): AppContext {
  const stores = openStores(config, config.sync.concurrency + 4);
  const { db, redis, queues } = stores;
  const rateCap = new RedisRequestRateCap(redis, config.replicate.requestsPerSecond, config.queuePrefix);
  const vault = new TokenVault(config.encryption.keys, config.encryption.currentKeyId);
  const replicate = new ReplicateClient({
    baseUrl: config.replicate.baseUrl,
    timeoutMs: config.replicate.timeoutMs,
    maxResponseBytes: config.replicate.maxResponseBytes,
    // After a disconnect or a token replacement, the client's own retries stop.
    stillWanted: (token, connectionId) => holdsToken(db, vault, connectionId, token),
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
    close: stores.close,
  };
}
