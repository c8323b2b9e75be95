import { Redis } from "ioredis";
import type { ProducerConfig } from "./config.js";
import { createDb } from "./db/client.js";
import { moduleLogger } from "./logger.js";
import { JobQueues } from "./queue/queues.js";
import { workspaceOf } from "./repositories/connections.js";

const log = moduleLogger("stores");

/** Postgres, Redis and the job queues: what the producer and the service both open. */
export function openStores(config: ProducerConfig, poolSize: number) {
  const db = createDb(config.databaseUrl, poolSize);
  // BullMQ workers need maxRetriesPerRequest: null (they wait for Redis); the same connection serves
  // the rate cap. Enqueues and reads (the API, bull-board, metrics) fail within seconds instead, so a
  // request never hangs while Redis is down.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const commands = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  // Reconnect attempts fail every few seconds while Redis is down; /readyz and the failing requests say so.
  for (const client of [redis, commands]) client.on("error", (err) => log.debug("redis connection error", { error: err }));
  // Job names carry the workspace so an operator can find one in the queue dashboard.
  const queues = new JobQueues(commands, config, (connectionId) => workspaceOf(db, connectionId));
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
