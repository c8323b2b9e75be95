import { Queue, type JobState, type JobType } from "bullmq";
import type { Redis } from "ioredis";
import type { ProducerConfig } from "../config.js";
import { moduleLogger } from "../logger.js";
import { JOB_KINDS, QUEUE_NAMES, QUEUE_SPECS, type JobData, type JobKind, type QueueName } from "./registry.js";

// The one BullMQ adapter: every enqueue, scheduler and job look-up goes through JobQueues, with ids, names and options from the registry.

/** A connected connection's recurring sync (a tick every SYNC_INTERVAL_MINUTES). */
export const schedulerId = (connectionId: string) => `sync-${connectionId}`;

const WORKSPACE_CACHE_SIZE = 10_000;

const log = moduleLogger("queues");
const PENDING_STATES: JobType[] = ["waiting", "delayed", "prioritized", "waiting-children"];
const STOPPED_BY_DISCONNECT = QUEUE_NAMES.filter((name) => QUEUE_SPECS[name].stopsOnDisconnect);
// An erasure removes a connection's jobs of every state (finished ones are kept a day or a week).
const SETTLED: JobState[] = ["waiting", "delayed", "prioritized", "waiting-children", "completed", "failed"];
const PAGE = 500;

export class JobQueues {
  private readonly queues = {} as Record<QueueName, Queue>;
  // A connection's workspace never changes: remembered, so chaining slices adds no database read.
  private readonly workspaces = new Map<string, string>();

  constructor(
    private readonly connection: Redis,
    private readonly config: Pick<ProducerConfig, "queuePrefix" | "jobs" | "sync">,
    private readonly workspaceOf: (connectionId: string) => Promise<string | null>,
  ) {
    for (const name of QUEUE_NAMES) {
      const { attempts = config.jobs.attempts, keepsFinished = true } = QUEUE_SPECS[name];
      const defaultJobOptions = {
        attempts,
        backoff: { type: "exponential", delay: config.jobs.backoffMs, jitter: 0.5 },
        // Bounded history: enough for support to look back a day (completed) or a week (failed).
        removeOnComplete: keepsFinished ? { count: 1000, age: 24 * 3600 } : true,
        removeOnFail: keepsFinished ? { count: 5000, age: 7 * 24 * 3600 } : true,
      };
      const queue = new Queue(name, { connection, prefix: config.queuePrefix, defaultJobOptions });
      // BullMQ prints an unhandled queue error to the console; while Redis is down each call fails on its own.
      queue.on("error", (err) => log.debug("queue connection error", { queue: name, error: err }));
      this.queues[name] = queue;
    }
  }

  queue(name: QueueName): Queue {
    return this.queues[name];
  }

  /** Every queue of the registry (bull-board, /metrics). */
  all(): Queue[] {
    return Object.values(this.queues);
  }

  /** "slice ws-1": an operator finds a workspace's jobs in bull-board by name; the workers dispatch on the first word. */
  private async jobName(kind: JobKind, data: object): Promise<string> {
    if (!("connectionId" in data) || typeof data.connectionId !== "string") return kind;
    const id = data.connectionId;
    const workspace = this.workspaces.get(id) ?? (await this.workspaceOf(id));
    if (workspace !== null && !this.workspaces.has(id)) {
      if (this.workspaces.size >= WORKSPACE_CACHE_SIZE) this.workspaces.delete(this.workspaces.keys().next().value!);
      this.workspaces.set(id, workspace);
    }
    return `${kind} ${workspace ?? id}`;
  }

  /**
   * Adds a job with the id or deduplication key its kind's spec gives (a repeated enqueue adds nothing). `afterActive`: while the
   * job holding the key runs, this one waits to run after it instead (a syncNow as a run's tick ends is not lost to that tick).
   */
  async enqueue<K extends JobKind>(kind: K, data: JobData<K>, { afterActive = false } = {}): Promise<void> {
    const { queue, spec } = JOB_KINDS.get(kind)!;
    await this.queues[queue].add(await this.jobName(kind, data), data, {
      jobId: spec.id?.(data),
      deduplication: spec.dedupe && { id: spec.dedupe(data), keepLastIfActive: afterActive },
    });
  }

  /** Makes sure the job will run: "running" if pending or running; a finished one (failed, or stopped while paused) is enqueued again. */
  async ensure<K extends JobKind>(kind: K, data: JobData<K>): Promise<"running" | "enqueued"> {
    const { queue, spec } = JOB_KINDS.get(kind)!;
    const existing = await this.queues[queue].getJob(spec.id!(data));
    if (existing) {
      const state = await existing.getState();
      if (state !== "failed" && state !== "completed") return "running";
      await existing.remove();
    }
    await this.enqueue(kind, data);
    return "enqueued";
  }

  /** Whether a worker is running the job (of a kind of `queue`) now. */
  async isActive(queue: QueueName, jobId: string): Promise<boolean> {
    const job = await this.queues[queue].getJob(jobId);
    return (await job?.getState()) === "active";
  }

  /**
   * A connection's recurring tick, its first one interval on: each caller ticks the connection itself
   * (verification, the reconciler), and two first ticks could make a short second run.
   */
  async upsertScheduler(connectionId: string): Promise<void> {
    const every = this.config.sync.intervalMinutes * 60_000;
    await this.queues.sync.upsertJobScheduler(
      schedulerId(connectionId),
      { every, startDate: Date.now() + every },
      { name: await this.jobName("tick", { connectionId }), data: { connectionId } },
    );
  }

  async removeScheduler(connectionId: string): Promise<void> {
    await this.queues.sync.removeJobScheduler(schedulerId(connectionId));
  }

  async nextSyncAt(connectionId: string): Promise<Date | null> {
    const scheduler = await this.queues.sync.getJobScheduler(schedulerId(connectionId));
    return scheduler?.next ? new Date(scheduler.next) : null;
  }

  /** Makes the schedulers match the connected connections: upserts race, a crash can leave one behind, Redis can lose them all. */
  async reconcileSchedulers(connectedIds: string[]): Promise<{ added: string[]; removed: number }> {
    const wanted = new Set(connectedIds.map(schedulerId));
    const have = new Set((await this.queues.sync.getJobSchedulers(0, -1)).map((s) => s.key));
    let removed = 0;
    for (const key of have) {
      if (!wanted.has(key)) {
        await this.queues.sync.removeJobScheduler(key);
        removed++;
      }
    }
    const added = connectedIds.filter((id) => !have.has(schedulerId(id)));
    for (const id of added) await this.upsertScheduler(id);
    // The service-wide schedules, upserted (idempotent) with the others.
    for (const [kind, { queue, spec }] of JOB_KINDS) {
      if (spec.schedule) await this.queues[queue].upsertJobScheduler(spec.schedule.id, { every: spec.schedule.every }, { name: kind });
    }
    return { added, removed };
  }

  /** Connections with a verify job waiting, delayed or running. */
  async connectionsAwaitingVerify(): Promise<Set<string>> {
    const jobs = await this.queues.verify.getJobs([...PENDING_STATES, "active"]);
    return new Set(jobs.filter(Boolean).map((j) => j.data.connectionId));
  }

  /** Removes every waiting or delayed job of the connection (active ones see the disconnect and stop). */
  async removePendingJobs(connectionId: string): Promise<number> {
    let removed = 0;
    for (const name of STOPPED_BY_DISCONNECT) {
      for (const job of await this.queues[name].getJobs(PENDING_STATES)) {
        if (job?.data.connectionId === connectionId) {
          await job.remove().catch(() => undefined); // already taken by a worker: it will stop by itself
          removed++;
        }
      }
    }
    return removed;
  }

  /**
   * For its erasure: removes the connection's jobs, scheduler, deduplication keys (and the job kept beside one) and the event
   * stream entries naming it from the queues a disconnect stops; `active` counts its jobs still running (not touched).
   */
  async purgeConnection(connectionId: string): Promise<{ removed: number; active: number }> {
    this.workspaces.delete(connectionId);
    const queues = STOPPED_BY_DISCONNECT.map((name) => this.queues[name]);
    // A connection's deduplication keys derive from its id alone (one pending tick per connection).
    const deduplication = [...JOB_KINDS.values()].flatMap(({ spec }) => (spec.dedupe ? [spec.dedupe({ connectionId })] : []));
    let removed = 0;
    for (const queue of queues) {
      await queue.removeJobScheduler(schedulerId(connectionId));
      for (const id of await jobIdsOf(queue, SETTLED, connectionId)) removed += await queue.remove(id);
      for (const id of deduplication) {
        await queue.removeDeduplicationKey(id);
        // The job waiting to run after the active one (enqueued `afterActive`): BullMQ keeps it beside the key.
        await this.connection.del(queue.toKey(`dn:${id}`));
      }
      await dropStreamEntries(this.connection, queue.keys.events!, connectionId);
    }
    let active = 0;
    for (const queue of queues) active += (await jobIdsOf(queue, ["active"], connectionId)).length;
    return { removed, active };
  }

  /** Readiness: resolves when Redis answers. */
  async ping(): Promise<void> {
    await this.connection.ping();
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}

async function jobIdsOf(queue: Queue, states: JobState[], connectionId: string): Promise<string[]> {
  const ids: string[] = [];
  for (const state of states) {
    for (let start = 0; ; start += PAGE) {
      const jobs = await queue.getJobs([state], start, start + PAGE - 1, true);
      for (const job of jobs) {
        if ((job?.data as { connectionId?: unknown } | undefined)?.connectionId === connectionId && job.id) ids.push(job.id);
      }
      if (jobs.length < PAGE) break;
    }
  }
  return ids;
}

/** Event stream entries (job ids, return values, failure reasons) that mention the connection. */
async function dropStreamEntries(redis: Redis, stream: string, connectionId: string): Promise<void> {
  for (let from = "-"; ;) {
    const entries = await redis.xrange(stream, from, "+", "COUNT", PAGE);
    const naming = entries.filter(([, fields]) => fields.some((f) => f.includes(connectionId))).map(([id]) => id);
    if (naming.length) await redis.xdel(stream, ...naming);
    if (entries.length < PAGE) return;
    from = `(${entries[entries.length - 1]![0]}`;
  }
}
