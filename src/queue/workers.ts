import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import { moduleLogger } from "../logger.js";
import {
  JOB_KINDS,
  QUEUE_NAMES,
  QUEUE_SPECS,
  type ClassifiedQueue,
  type JobHandle,
  type JobOutcome,
  type Processors,
  type QueueName,
} from "./registry.js";

/** A failed attempt of a job whose data names its connection; a delay counts in attemptsStarted, not in attemptsMade. */
export interface FailedAttempt {
  data: { connectionId: string };
  jobId: string | null;
  attemptsMade: number;
  attemptsStarted: number;
  maxAttempts: number;
}

/** What startService (src/service.ts) hands the workers: the queue layer knows no lifecycle. */
export interface WorkerSetup {
  /** A connection that waits for Redis (maxRetriesPerRequest: null), as BullMQ workers need. */
  redis: Redis;
  config: Config;
  processors: Processors;
  onFailure(queue: ClassifiedQueue, err: unknown, job: FailedAttempt): Promise<JobOutcome>;
  onFinished(queue: QueueName, kind: string, outcome: "completed" | "failed", seconds: number): void;
}

/** Start-up fails on a job kind of the registry that has no processor. */
function checkProcessors(processors: Processors): void {
  const missing = [...JOB_KINDS].filter(([kind]) => typeof (processors as Record<string, unknown>)[kind] !== "function");
  const problems = missing.map(([kind, { queue }]) => `queue "${queue}" has no processor for "${kind}" jobs`);
  if (problems.length) throw new Error(`${problems.join("; ")}: register one in jobs/index.ts`);
}

/** A job's kind: the first word of its name ("slice ws-1" → "slice", see Queues' jobName). */
const kindOf = (job: Job) => job.name.split(" ")[0]!;

/** Runs a queue's jobs, data checked by the kind's schema; a "classified" queue's failure goes to the policy, mapped to BullMQ. */
function handler(queue: QueueName, setup: WorkerSetup) {
  const { failures, jobs } = QUEUE_SPECS[queue];
  return async (job: Job, lockToken?: string) => {
    const kind = kindOf(job);
    if (!Object.hasOwn(jobs, kind)) throw new UnrecoverableError(`queue ${queue} has no job kind "${kind}"`);
    const data = jobs[kind]!.data.parse(job.data);
    const maxAttempts = job.opts.attempts ?? 1;
    const handle: JobHandle = { id: job.id, attempt: job.attemptsMade + 1, maxAttempts, updateProgress: (p) => job.updateProgress(p) };
    try {
      return await (setup.processors as unknown as Record<string, (data: unknown, job: JobHandle) => Promise<unknown>>)[kind]!(
        data,
        handle,
      );
    } catch (err) {
      if (failures !== "classified") throw err;
      const outcome = await setup.onFailure(queue as ClassifiedQueue, err, {
        data: data as FailedAttempt["data"],
        jobId: job.id ?? null,
        attemptsMade: job.attemptsMade,
        attemptsStarted: job.attemptsStarted,
        maxAttempts,
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

/** Starts a worker for every queue of the registry this process runs; close() stops taking jobs and waits for those in flight. */
export function startWorkers(setup: WorkerSetup): { close(): Promise<void> } {
  checkProcessors(setup.processors);
  const log = moduleLogger("workers");
  // A worker killed mid-job leaves its lock to expire; the stalled-job check then hands the job to
  // another worker. Jobs are idempotent, so a few such hand-overs are safe before giving up on one.
  const { lockMs } = setup.config.jobs;
  const workers = QUEUE_NAMES.filter((name) => QUEUE_SPECS[name].runs?.(setup.config) ?? true).map((name) => {
    const worker = new Worker(name, handler(name, setup), {
      connection: setup.redis,
      prefix: setup.config.queuePrefix,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount: 3,
      concurrency: QUEUE_SPECS[name].concurrency(setup.config),
    });
    worker.on("error", (err) => log.error("worker error", { queue: name, error: err }));
    // Run again, or failed for good after maxStalledCount without reaching the failure policy (the reconciler resumes its run).
    worker.on("stalled", (jobId) => log.warn("job stalled: its worker stopped renewing the lock", { queue: name, jobId }));
    const observe = (job: Job | undefined, outcome: "completed" | "failed") => {
      if (!job?.processedOn || !job.finishedOn) return;
      const ms = job.finishedOn - job.processedOn;
      // The kind only: a workspace per label value would grow the series without bound.
      setup.onFinished(name, kindOf(job), outcome, ms / 1000);
      log.debug(`job ${outcome}`, { queue: name, jobId: job.id, ms });
    };
    worker.on("completed", (job) => observe(job, "completed"));
    worker.on("failed", (job) => observe(job, "failed"));
    return worker;
  });
  return { close: async () => void (await Promise.all(workers.map((w) => w.close()))) };
}
