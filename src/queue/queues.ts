import { randomUUID } from "node:crypto";
import { Queue, type DefaultJobOptions, type JobType } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import { moduleLogger } from "../logger.js";
import { purgeConnectionJobs } from "./purge.js";

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
/** A webhook outbox row (webhook_deliveries.id); the body is read from Postgres, never carried here. */
export const webhookJobData = z.object({ deliveryId: z.string().regex(/^\d+$/) });
export type VerifyJobData = z.infer<typeof verifyJobData>;
export type SyncJobData = z.infer<typeof syncJobData>;
export type WebhookJobData = z.infer<typeof webhookJobData>;
// erasure (src/lifecycle/erase.ts): one job per connection whose history is being erased.
export const eraseJobData = z.object({ connectionId: z.uuid() });
export type EraseJobData = z.infer<typeof eraseJobData>;

/** A slice of one window of a run: `page` is the window's next page when the job was enqueued. */
export type SliceJob = Required<SyncJobData>;

export const QUEUE = { verify: "verify", sync: "sync", webhook: "webhook", maintenance: "maintenance", erase: "erase" } as const;

/** A webhook is retried longer than a sync page: with exponential backoff from JOB_BACKOFF_MS (2 s), 12 attempts span about an hour. */
export const WEBHOOK_ATTEMPTS = 12;
/** erasure: an erasure waits for the connection's running jobs by failing and retrying; the reconciler re-enqueues one that gave up. */
export const ERASE_ATTEMPTS = 12;

/** Deterministic ids: a retried or repeated enqueue cannot fork a run or duplicate a tick. */
export const jobIds = {
  verify: (connectionId: string, attempt: string) => `verify-${connectionId}-${attempt}`,
  slice: (s: SliceJob) => `page-${s.connectionId}-${s.runId}-${s.window}-${s.page}`,
  kick: (connectionId: string) => `kick-${connectionId}`,
  scheduler: (connectionId: string) => `sync-${connectionId}`,
  webhook: (deliveryId: string) => `webhook-${deliveryId}`,
  prune: "prune-ledger",
  erase: (connectionId: string) => `erase-${connectionId}`,
};

/** The ledger prune runs once a day (src/lifecycle/prune.ts). */
const PRUNE_EVERY_MS = 24 * 3_600_000;
const WORKSPACE_CACHE_SIZE = 10_000;

export function jobOptions(attempts: number, backoffMs: number): DefaultJobOptions {
  return {
    attempts,
    backoff: { type: "exponential", delay: backoffMs, jitter: 0.5 },
    // Bounded history: enough for support to look back a day (completed) or a week (failed).
    removeOnComplete: { count: 1000, age: 24 * 3600 },
    removeOnFail: { count: 5000, age: 7 * 24 * 3600 },
  };
}

const log = moduleLogger("queues");
const PENDING_STATES: JobType[] = ["waiting", "delayed", "prioritized", "waiting-children"];

export class JobQueues {
  readonly verify: Queue<VerifyJobData>;
  readonly sync: Queue<SyncJobData>;
  readonly webhook: Queue<WebhookJobData>;
  readonly maintenance: Queue;
  readonly erase: Queue<EraseJobData>;
  // A connection's workspace never changes: remembered, so chaining slices adds no database read.
  private readonly workspaces = new Map<string, string>();

  constructor(
    private readonly connection: Redis,
    prefix: string,
    defaultJobOptions: DefaultJobOptions,
    private readonly syncIntervalMinutes: number,
    private readonly workspaceOf: (connectionId: string) => Promise<string | null>,
  ) {
    this.verify = new Queue<VerifyJobData>(QUEUE.verify, { connection, prefix, defaultJobOptions });
    this.sync = new Queue<SyncJobData>(QUEUE.sync, { connection, prefix, defaultJobOptions });
    this.webhook = new Queue<WebhookJobData>(QUEUE.webhook, { connection, prefix, defaultJobOptions });
    this.maintenance = new Queue(QUEUE.maintenance, { connection, prefix, defaultJobOptions });
    this.erase = new Queue<EraseJobData>(QUEUE.erase, { connection, prefix, defaultJobOptions });
    // BullMQ prints an unhandled queue error to the console; while Redis is down each call fails on its own.
    for (const queue of [this.verify, this.sync, this.webhook, this.maintenance, this.erase]) {
      queue.on("error", (err) => log.debug("queue connection error", { queue: queue.name, error: err }));
    }
  }

  /** "page ws-1": bull-board lists jobs by name, so an operator finds a workspace's jobs by searching for it. */
  private async jobName(kind: "verify" | "tick" | "page" | "erase", connectionId: string): Promise<string> {
    return `${kind} ${(await this.workspaceFor(connectionId)) ?? connectionId}`;
  }

  private async workspaceFor(connectionId: string): Promise<string | null> {
    const known = this.workspaces.get(connectionId);
    if (known !== undefined) return known;
    const workspace = await this.workspaceOf(connectionId);
    if (workspace !== null) {
      if (this.workspaces.size >= WORKSPACE_CACHE_SIZE) this.workspaces.delete(this.workspaces.keys().next().value!);
      this.workspaces.set(connectionId, workspace);
    }
    return workspace;
  }

  async enqueueVerify(connectionId: string): Promise<void> {
    await this.verify.add(
      await this.jobName("verify", connectionId),
      { connectionId },
      { jobId: jobIds.verify(connectionId, randomUUID()) },
    );
  }

  /** One job per outbox row: enqueueing the same row again (the relay crashed before marking it) adds nothing. */
  async enqueueWebhook(deliveryId: string): Promise<void> {
    await this.webhook.add("deliver", { deliveryId }, { jobId: jobIds.webhook(deliveryId), attempts: WEBHOOK_ATTEMPTS });
  }

  /** syncNow and the first backfill: one pending tick per connection at most (BullMQ deduplication). */
  async kickSync(connectionId: string): Promise<void> {
    await this.sync.add(await this.jobName("tick", connectionId), { connectionId }, { deduplication: { id: jobIds.kick(connectionId) } });
  }

  /** A window's next slice; a second enqueue of the same slice is a no-op (the id is taken). */
  async enqueueSlice(slice: SliceJob): Promise<void> {
    await this.sync.add(await this.jobName("page", slice.connectionId), slice, { jobId: jobIds.slice(slice) });
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
      { name: await this.jobName("tick", connectionId), data: { connectionId } },
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
  async reconcileSchedulers(connectedIds: string[]): Promise<{ added: string[]; removed: number }> {
    const wanted = new Set(connectedIds.map(jobIds.scheduler));
    const have = new Set((await this.sync.getJobSchedulers(0, -1)).map((s) => s.key));
    let removed = 0;
    for (const key of have) {
      if (!wanted.has(key)) {
        await this.sync.removeJobScheduler(key);
        removed++;
      }
    }
    const added = connectedIds.filter((id) => !have.has(jobIds.scheduler(id)));
    for (const id of added) await this.upsertScheduler(id);
    // Not per connection: one for the whole service, upserted (idempotent) with the others.
    await this.maintenance.upsertJobScheduler(jobIds.prune, { every: PRUNE_EVERY_MS }, { name: "prune" });
    return { added, removed };
  }

  /** Connections with a verify job waiting, delayed or running. */
  async connectionsAwaitingVerify(): Promise<Set<string>> {
    const jobs = await this.verify.getJobs([...PENDING_STATES, "active"]);
    return new Set(jobs.filter(Boolean).map((j) => j.data.connectionId));
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

  // erasure: the erase job and the queue side of an erasure.
  /** One job per erasure; removed when it ends either way, so the reconciler can enqueue an unfinished one again. */
  async enqueueErase(connectionId: string): Promise<void> {
    await this.erase.add(
      await this.jobName("erase", connectionId),
      { connectionId },
      { jobId: jobIds.erase(connectionId), attempts: ERASE_ATTEMPTS, removeOnComplete: true, removeOnFail: true },
    );
  }

  /** Removes every job, scheduler and event of the connection from the sync and verify queues; `active`: its jobs still running. */
  async purgeConnection(connectionId: string): Promise<{ removed: number; active: number }> {
    this.workspaces.delete(connectionId);
    return purgeConnectionJobs(this.connection, [this.sync, this.verify], connectionId, {
      schedulers: [jobIds.scheduler(connectionId)],
      deduplication: [jobIds.kick(connectionId)],
    });
  }

  /** Readiness: resolves when Redis answers. */
  async ping(): Promise<void> {
    await this.connection.ping();
  }

  async close(): Promise<void> {
    await Promise.all([this.verify.close(), this.sync.close(), this.webhook.close(), this.maintenance.close(), this.erase.close()]);
  }
}
