import { randomUUID } from "node:crypto";
import { Queue, type DefaultJobOptions, type JobType } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import { moduleLogger } from "../logger.js";

// The one BullMQ adapter: every enqueue, scheduler and job look-up goes through JobQueues, so job
// ids and options are decided here and nowhere else. Job data carries ids only: the token stays
// encrypted in Postgres.

export const verifyJobData = z.object({ connectionId: z.uuid() });
export const syncJobData = z.object({
  connectionId: z.uuid(),
  /** Absent on scheduler ticks and syncNow: "start or continue a run". */
  runId: z.string().min(1).optional(),
  /** With runId and page: a slice of that window of the run (src/lifecycle/sync-step.ts). */
  window: z
    .string()
    .regex(/^[0-9a-z]+$/)
    .optional(),
  page: z.number().int().positive().optional(),
});
export type VerifyJobData = z.infer<typeof verifyJobData>;
export type SyncJobData = z.infer<typeof syncJobData>;
/** A slice of one window of a run: `page` is the window's next page when the job was enqueued. */
export type SliceJob = Required<SyncJobData>;

export const QUEUE = { verify: "verify", sync: "sync", maintenance: "maintenance" } as const;

/** Deterministic ids: a retried or repeated enqueue cannot fork a run or duplicate a tick. */
export const jobIds = {
  verify: (connectionId: string, attempt: string) => `verify-${connectionId}-${attempt}`,
  slice: (s: SliceJob) => `page-${s.connectionId}-${s.runId}-${s.window}-${s.page}`,
  kick: (connectionId: string) => `kick-${connectionId}`,
  scheduler: (connectionId: string) => `sync-${connectionId}`,
  prune: "prune-ledger",
};

/** The ledger prune runs once a day (src/lifecycle/prune.ts). */
const PRUNE_EVERY_MS = 24 * 3_600_000;

export function jobOptions(attempts: number, backoffMs: number): DefaultJobOptions {
  return {
    attempts,
    backoff: { type: "exponential", delay: backoffMs, jitter: 0.5 },
    // Bounded history: enough for support to look back a day (completed) or a week (failed).
    removeOnComplete: { count: 1000, age: 24 * 3600 },
    removeOnFail: { count: 5000, age: 7 * 24 * 3600 },
  };
}

const PENDING_STATES: JobType[] = ["waiting", "delayed", "prioritized", "waiting-children"];
const log = moduleLogger("queues");

export class JobQueues {
  readonly verify: Queue<VerifyJobData>;
  readonly sync: Queue<SyncJobData>;
  readonly maintenance: Queue;

  constructor(
    connection: Redis,
    prefix: string,
    defaultJobOptions: DefaultJobOptions,
    private readonly syncIntervalMinutes: number,
  ) {
    this.verify = new Queue<VerifyJobData>(QUEUE.verify, { connection, prefix, defaultJobOptions });
    this.sync = new Queue<SyncJobData>(QUEUE.sync, { connection, prefix, defaultJobOptions });
    this.maintenance = new Queue(QUEUE.maintenance, { connection, prefix, defaultJobOptions });
  }

  async enqueueVerify(connectionId: string): Promise<void> {
    await this.verify.add("verify", { connectionId }, { jobId: jobIds.verify(connectionId, randomUUID()) });
  }

  /** syncNow and the first backfill: one pending tick per connection at most (BullMQ deduplication). */
  async kickSync(connectionId: string): Promise<void> {
    await this.sync.add("tick", { connectionId }, { deduplication: { id: jobIds.kick(connectionId) } });
  }

  /** A window's next slice; a second enqueue of the same slice is a no-op (the id is taken). */
  async enqueueSlice(slice: SliceJob): Promise<void> {
    await this.sync.add("page", slice, { jobId: jobIds.slice(slice) });
  }

  /**
   * Makes sure the slice job exists and will run: "running" when one is already pending or running.
   * A finished job for a slice the checkpoint still wants failed for good or stopped without
   * writing (the connection was paused meanwhile), so it is removed and enqueued again.
   */
  async ensureSlice(slice: SliceJob): Promise<"running" | "enqueued"> {
    const existing = await this.sync.getJob(jobIds.slice(slice));
    if (existing) {
      const state = await existing.getState();
      if (state !== "failed" && state !== "completed") return "running";
      await existing.remove();
    }
    await this.enqueueSlice(slice);
    return "enqueued";
  }

  async upsertScheduler(connectionId: string): Promise<void> {
    await this.sync.upsertJobScheduler(
      jobIds.scheduler(connectionId),
      { every: this.syncIntervalMinutes * 60_000 },
      { name: "tick", data: { connectionId } },
    );
  }

  async removeScheduler(connectionId: string): Promise<void> {
    await this.sync.removeJobScheduler(jobIds.scheduler(connectionId));
  }

  async nextSyncAt(connectionId: string): Promise<Date | null> {
    const scheduler = await this.sync.getJobScheduler(jobIds.scheduler(connectionId));
    return scheduler?.next ? new Date(scheduler.next) : null;
  }

  /**
   * Makes the set of schedulers equal the given set of connected connections: BullMQ can race when
   * several processes upsert at once, a crash can leave one behind, and Redis can lose them all.
   */
  async reconcileSchedulers(connectedIds: string[]): Promise<{ added: number; removed: number }> {
    const wanted = new Set(connectedIds.map(jobIds.scheduler));
    const have = new Set((await this.sync.getJobSchedulers(0, -1)).map((s) => s.key));
    let removed = 0;
    for (const key of have) {
      if (!wanted.has(key)) {
        await this.sync.removeJobScheduler(key);
        removed++;
      }
    }
    let added = 0;
    for (const id of connectedIds) {
      if (!have.has(jobIds.scheduler(id))) {
        await this.upsertScheduler(id);
        added++;
      }
    }
    if (added || removed) log.info("schedulers reconciled", { added, removed });
    // Not per connection: one for the whole service, upserted (idempotent) with the others.
    await this.maintenance.upsertJobScheduler(jobIds.prune, { every: PRUNE_EVERY_MS }, { name: "prune" });
    return { added, removed };
  }

  /** Removes every waiting or delayed job of the connection (active ones see the disconnect and stop). */
  async removePendingJobs(connectionId: string): Promise<number> {
    let removed = 0;
    for (const queue of [this.sync, this.verify] as const) {
      for (const job of await queue.getJobs(PENDING_STATES)) {
        if (job?.data.connectionId === connectionId) {
          await job.remove().catch(() => undefined); // already taken by a worker: it will stop by itself
          removed++;
        }
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    await Promise.all([this.verify.close(), this.sync.close(), this.maintenance.close()]);
  }
}
