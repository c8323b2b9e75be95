import { Queue, type DefaultJobOptions } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";

// Job data carries ids only: the token stays encrypted in Postgres.
export const verifyJobData = z.object({ connectionId: z.uuid() });
export const syncJobData = z.object({
  connectionId: z.uuid(),
  /** Absent on scheduler ticks and syncNow: "start or continue a run". */
  runId: z.string().min(1).optional(),
  page: z.number().int().positive().optional(),
});
export type VerifyJobData = z.infer<typeof verifyJobData>;
export type SyncJobData = z.infer<typeof syncJobData>;

export const QUEUE = { verify: "verify", sync: "sync" } as const;

/** Deterministic ids: a retried or repeated enqueue cannot fork a run or duplicate a tick. */
export const jobIds = {
  verify: (connectionId: string, attempt: string) => `verify-${connectionId}-${attempt}`,
  page: (connectionId: string, runId: string, page: number) => `page-${connectionId}-${runId}-${page}`,
  kick: (connectionId: string) => `kick-${connectionId}`,
  scheduler: (connectionId: string) => `sync-${connectionId}`,
};

export function jobOptions(attempts: number, backoffMs: number): DefaultJobOptions {
  return {
    attempts,
    backoff: { type: "exponential", delay: backoffMs, jitter: 0.5 },
    // Bounded history: enough for support to look back a day (completed) or a week (failed).
    removeOnComplete: { count: 1000, age: 24 * 3600 },
    removeOnFail: { count: 5000, age: 7 * 24 * 3600 },
  };
}

export interface Queues {
  verify: Queue<VerifyJobData>;
  sync: Queue<SyncJobData>;
  close(): Promise<void>;
}

export function createQueues(connection: Redis, prefix: string, defaultJobOptions: DefaultJobOptions): Queues {
  const verify = new Queue<VerifyJobData>(QUEUE.verify, { connection, prefix, defaultJobOptions });
  const sync = new Queue<SyncJobData>(QUEUE.sync, { connection, prefix, defaultJobOptions });
  return {
    verify,
    sync,
    async close() {
      await Promise.all([verify.close(), sync.close()]);
    },
  };
}
