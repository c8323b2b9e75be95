import { Worker, type Job } from "bullmq";
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
  // A worker killed mid-job leaves its lock to expire; the stalled-job check then hands the job to
  // another worker. Jobs are idempotent, so a few such hand-overs are safe before giving up on one.
  const lockMs = ctx.config.jobs.lockMs;
  const options = {
    connection: ctx.redis,
    prefix: ctx.config.queuePrefix,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 3,
  };
  const workers = [
    new Worker(QUEUE.verify, verifyProcessor(ctx), { ...options, concurrency: 4 }),
    new Worker(QUEUE.sync, syncProcessor(ctx), { ...options, concurrency: ctx.config.sync.concurrency }),
  ];
  for (const w of workers) {
    w.on("error", (err) => log.error("worker error", { queue: w.name, error: err }));
    const observe = (job: Job | undefined, outcome: "completed" | "failed") => {
      if (!job?.processedOn || !job.finishedOn) return;
      const ms = job.finishedOn - job.processedOn;
      ctx.metrics.jobDuration.observe({ queue: w.name, name: job.name, outcome }, ms / 1000);
      log.debug(`job ${outcome}`, { queue: w.name, jobId: job.id, ms });
    };
    w.on("completed", (job) => observe(job, "completed"));
    w.on("failed", (job) => observe(job, "failed"));
  }
  return {
    /** Stops taking jobs and waits for the in-flight ones to finish. */
    async close() {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
