import { Worker } from "bullmq";
import { syncProcessor } from "../../jobs/sync.job.js";
import { verifyProcessor } from "../../jobs/verify.job.js";
import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { QUEUE } from "./queues.js";

export interface Workers {
  close(): Promise<void>;
}

/** Starts the verify and sync workers. Each worker gets its own blocking Redis connection. */
export function startWorkers(ctx: AppContext): Workers {
  const log = moduleLogger("workers");
  const options = { connection: ctx.redis, prefix: ctx.config.queuePrefix };
  const workers = [
    new Worker(QUEUE.verify, verifyProcessor(ctx), { ...options, concurrency: 4 }),
    new Worker(QUEUE.sync, syncProcessor(ctx), { ...options, concurrency: ctx.config.sync.concurrency }),
  ];
  for (const w of workers) w.on("error", (err) => log.error("worker error", { queue: w.name, error: err }));
  return {
    /** Stops taking jobs and waits for the in-flight ones to finish. */
    async close() {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
