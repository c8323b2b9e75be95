import type { Redis } from "ioredis";
import type { Config } from "./config.js";
import type { Db } from "./db/client.js";
import type { ServiceMetrics } from "./metrics.js";
import type { JobQueues } from "./queue/queues.js";
import type { ReplicateClient } from "./replicate/client.js";
import type { RedisRequestRateCap } from "./replicate/rate-cap.js";
import type { PagePrefetcher } from "./sync/prefetch.js";
import type { TokenVault } from "./vault.js";

/** Everything the lifecycle steps, the processors and the API need: built once per process by startService (src/service.ts). */
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
}

// The job vocabulary processors and the lifecycle speak; BullMQ and the workers stay behind `queues`.
export type { JobData, JobHandle, JobOutcome, Processors } from "./queue/registry.js";
