import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { z } from "zod";
import type { Config } from "../config.js";
import type { AppContext } from "../context.js";
import { applyFailure, classify, type FailureDeps } from "../lifecycle/failures.js";
import type { JobProgress } from "../lifecycle/sync-step.js";
import { moduleLogger } from "../logger.js";
import type { ServiceMetrics } from "../metrics.js";
import type { WebhookAttempt } from "../webhooks/deliver.js";
import { WebhookRelay } from "../webhooks/relay.js";
import {
  QUEUE,
  eraseJobData,
  syncJobData,
  verifyJobData,
  webhookJobData,
  type EraseJobData,
  type SyncJobData,
  type VerifyJobData,
  type WebhookJobData,
} from "./queues.js";

/** One processor per queue, registered by the entry point (see jobs/); a processor never sees BullMQ itself. */
export interface Processors {
  verify(data: VerifyJobData, job: JobProgress): Promise<unknown>;
  sync(data: SyncJobData, job: JobProgress): Promise<unknown>;
  webhook(data: WebhookJobData, job: WebhookAttempt): Promise<unknown>;
  /** Scheduled upkeep with no connection (the ledger prune); a failure is retried by BullMQ. */
  prune(): Promise<unknown>;
  /** erasure: a connection's history, in batches; a failure (its jobs still running) is retried by BullMQ. */
  erase(data: EraseJobData): Promise<unknown>;
}

export interface WorkerDeps {
  redis: Redis;
  config: Pick<Config, "queuePrefix" | "jobs" | "sync">;
  metrics: ServiceMetrics;
  failures: FailureDeps;
  /** Moves the webhook outbox to the webhook queue; null when webhooks are off (then no webhook worker runs either). */
  webhookRelay: WebhookRelay | null;
}

/** How often each worker process looks for webhooks not yet queued. */
const WEBHOOK_RELAY_INTERVAL_MS = 500;

/** The narrow slice of the context the workers and the failure handling use. */
export function workerDeps(ctx: AppContext): WorkerDeps {
  return {
    redis: ctx.redis,
    config: ctx.config,
    metrics: ctx.metrics,
    failures: {
      db: ctx.db,
      vault: ctx.vault,
      removeScheduler: (id) => ctx.queues.removeScheduler(id),
      onRateLimited: (source) => ctx.metrics.rateLimited.inc({ source }),
    },
    webhookRelay: ctx.config.webhooks
      ? new WebhookRelay({ db: ctx.db, enqueue: (id) => ctx.queues.enqueueWebhook(id), intervalMs: WEBHOOK_RELAY_INTERVAL_MS })
      : null,
  };
}

export interface Workers {
  /** Stops taking jobs and waits for the in-flight ones to finish. */
  close(): Promise<void>;
}

/**
 * Runs one queue's processor: validates the job data, and on failure classifies the error, applies
 * its effects and maps the outcome to BullMQ (delay without spending an attempt, complete, stop, retry).
 */
function handler<D extends { connectionId: string; runId?: string }>(
  queue: "verify" | "sync",
  schema: z.ZodType<D>,
  process: (data: D, job: JobProgress) => Promise<unknown>,
  deps: WorkerDeps,
) {
  return async (job: Job<D>, lockToken?: string) => {
    const data = schema.parse(job.data);
    try {
      return await process(data, job);
    } catch (err) {
      const decision = classify(err, {
        queue,
        attemptsMade: job.attemptsMade,
        maxAttempts: job.opts.attempts ?? 1,
        attemptsStarted: job.attemptsStarted,
        backoffMs: deps.config.jobs.backoffMs,
      });
      const outcome = await applyFailure(deps.failures, decision, err, {
        connectionId: data.connectionId,
        runId: data.runId,
        jobId: job.id ?? null,
        attemptsMade: job.attemptsMade,
      });
      switch (outcome.then) {
        case "delay":
          await job.moveToDelayed(Date.now() + outcome.delayMs, lockToken);
          throw new DelayedError();
        case "complete":
          return outcome.result;
        case "stop":
          throw new UnrecoverableError(outcome.reason);
        case "rethrow":
          throw err;
      }
    }
  };
}

/** Webhook delivery: a failure is the backend's answer, retried by BullMQ with backoff until the last attempt. */
function webhookHandler(process: Processors["webhook"]) {
  return async (job: Job<WebhookJobData>) =>
    process(webhookJobData.parse(job.data), { jobId: job.id, attempt: job.attemptsMade + 1, maxAttempts: job.opts.attempts ?? 1 });
}

/** Starts the verify and sync workers, and the webhook worker and relay when webhooks are on. Each worker gets its own blocking Redis connection. */
export function startWorkers(deps: WorkerDeps, processors: Processors): Workers {
  const log = moduleLogger("workers");
  // A worker killed mid-job leaves its lock to expire; the stalled-job check then hands the job to
  // another worker. Jobs are idempotent, so a few such hand-overs are safe before giving up on one.
  const { lockMs } = deps.config.jobs;
  const options = {
    connection: deps.redis,
    prefix: deps.config.queuePrefix,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 3,
  };
  const workers = [
    new Worker(QUEUE.verify, handler("verify", verifyJobData, processors.verify, deps), { ...options, concurrency: 4 }),
    new Worker(QUEUE.sync, handler("sync", syncJobData, processors.sync, deps), { ...options, concurrency: deps.config.sync.concurrency }),
    ...(deps.webhookRelay ? [new Worker(QUEUE.webhook, webhookHandler(processors.webhook), { ...options, concurrency: 4 })] : []),
    new Worker(QUEUE.maintenance, () => processors.prune(), { ...options, concurrency: 1 }),
    // erasure: one at a time per process, so erasing never takes the database from the syncs.
    new Worker(QUEUE.erase, (job: Job<EraseJobData>) => processors.erase(eraseJobData.parse(job.data)), { ...options, concurrency: 1 }),
  ];
  deps.webhookRelay?.start();
  for (const w of workers) {
    w.on("error", (err) => log.error("worker error", { queue: w.name, error: err }));
    const observe = (job: Job | undefined, outcome: "completed" | "failed") => {
      if (!job?.processedOn || !job.finishedOn) return;
      const ms = job.finishedOn - job.processedOn;
      // The kind only ("page ws-1" → "page"): a workspace per label value would grow the series without bound.
      deps.metrics.jobDuration.observe({ queue: w.name, name: job.name.split(" ")[0]!, outcome }, ms / 1000);
      log.debug(`job ${outcome}`, { queue: w.name, jobId: job.id, ms });
    };
    w.on("completed", (job) => observe(job, "completed"));
    w.on("failed", (job) => observe(job, "failed"));
  }
  return {
    async close() {
      await deps.webhookRelay?.stop();
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
