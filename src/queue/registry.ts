import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Config } from "../config.js";

// Every queue the service runs, its job kinds and how they run: the adapter, the workers, /metrics and bull-board iterate this table,
// and start-up refuses a kind without a processor (jobs/index.ts). Job data carries ids only: the token stays encrypted in Postgres.

interface JobSpec<S extends z.ZodType = z.ZodType> {
  data: S;
  /** The BullMQ job id: enqueueing the same id again adds nothing. */
  id?(data: z.output<S>): string;
  /** At most one pending job per key (BullMQ deduplication; one more waits beside the running one when enqueued `afterActive`). */
  dedupe?(data: z.output<S>): string;
  /** One scheduler for the whole service runs it this often (upserted by the reconciler). */
  schedule?: { id: string; every: number };
}

interface QueueSpec {
  jobs: Record<string, JobSpec>;
  concurrency(config: Config): number;
  /** Overrides JOB_ATTEMPTS for this queue's jobs. */
  attempts?: number;
  /** "classified": a failure goes to the failure policy (the data names the connection); "retried": BullMQ backs off and retries. */
  failures: "classified" | "retried";
  /** A disconnect removes the connection's pending jobs of this queue; an erasure removes all of them. */
  stopsOnDisconnect?: boolean;
  /** Finished jobs stay for support to look back (a day completed, a week failed) unless false. */
  keepsFinished?: boolean;
  /** Whether this process runs the queue's worker (default: always). */
  runs?(config: Config): boolean;
}

const job = <S extends z.ZodType>(data: S, options: Omit<JobSpec<S>, "data"> = {}): JobSpec<S> => ({ data, ...options });

const connection = z.object({ connectionId: z.uuid() });

export const QUEUES = {
  verify: {
    /** Checks a new or replaced token and starts syncing. */
    jobs: { verify: job(connection, { id: (d) => `verify-${d.connectionId}-${randomUUID()}` }) },
    concurrency: () => 4,
    failures: "classified",
    stopsOnDisconnect: true,
  },
  sync: {
    jobs: {
      /** Starts a run or continues the current one (scheduler, syncNow, reconciler); one pending per connection. */
      tick: job(connection, { dedupe: (d) => `tick-${d.connectionId}` }),
      /** Reads one window of a run for about SYNC_SLICE_MS; `page` is the window's next page. */
      slice: job(
        connection.extend({
          runId: z.string().min(1),
          window: z.string().regex(/^[0-9a-z]+$/),
          page: z.number().int().positive(),
        }),
        { id: (s) => `slice-${s.connectionId}-${s.runId}-${s.window}-${s.page}` },
      ),
    },
    concurrency: (config) => config.sync.concurrency,
    failures: "classified",
    stopsOnDisconnect: true,
  },
  webhook: {
    /** A webhook outbox row (webhook_deliveries.id); the body is read from Postgres. */
    jobs: { deliver: job(z.object({ deliveryId: z.string().regex(/^\d+$/) }), { id: (d) => `webhook-${d.deliveryId}` }) },
    concurrency: () => 4,
    // With exponential backoff from JOB_BACKOFF_MS (2 s), 12 attempts span about an hour.
    attempts: 12,
    failures: "retried",
    runs: (config) => config.webhooks !== null,
  },
  maintenance: {
    /** Deletes ledger rows no run can read again (src/lifecycle/prune.ts). */
    jobs: { prune: job(z.object({}), { schedule: { id: "prune-ledger", every: 24 * 3_600_000 } }) },
    concurrency: () => 1,
    failures: "retried",
  },
  erase: {
    /** Erases a disconnected connection's history in batches (src/lifecycle/erase.ts); waits for its running jobs by retrying. */
    jobs: { erase: job(connection, { id: (d) => `erase-${d.connectionId}` }) },
    // One at a time per process, so erasing never takes the database from the syncs.
    concurrency: () => 1,
    attempts: 12,
    failures: "retried",
    // Gone when it ends either way, so the reconciler can enqueue an unfinished one again.
    keepsFinished: false,
  },
} satisfies Record<string, QueueSpec>;

export type QueueName = keyof typeof QUEUES;
type JobsOf<Q extends QueueName> = (typeof QUEUES)[Q]["jobs"];
export type JobKind = { [Q in QueueName]: keyof JobsOf<Q> & string }[QueueName];
type SpecOf<K extends JobKind> = { [Q in QueueName]: K extends keyof JobsOf<Q> ? JobsOf<Q>[K] : never }[QueueName];
export type JobData<K extends JobKind> = z.output<SpecOf<K>["data"]>;
/** Queues whose failures the lifecycle's failure policy decides. */
export type ClassifiedQueue = { [Q in QueueName]: (typeof QUEUES)[Q]["failures"] extends "classified" ? Q : never }[QueueName];

/** The registry seen through its common shape, for code that iterates it. */
export const QUEUE_SPECS: Readonly<Record<QueueName, QueueSpec>> = QUEUES;
export const QUEUE_NAMES = Object.keys(QUEUES) as QueueName[];

/** Each job kind's queue and spec; a kind named in two queues would make dispatch ambiguous. */
export const JOB_KINDS = new Map<string, { queue: QueueName; spec: JobSpec }>();
for (const queue of QUEUE_NAMES) {
  for (const [kind, spec] of Object.entries(QUEUE_SPECS[queue].jobs)) {
    if (JOB_KINDS.has(kind)) throw new Error(`job kind "${kind}" is in two queues`);
    JOB_KINDS.set(kind, { queue, spec });
  }
}

/** What a processor sees of its job; never BullMQ itself. */
export interface JobHandle {
  id?: string;
  /** 1-based, and how many the queue allows. */
  attempt: number;
  maxAttempts: number;
  updateProgress(progress: object): Promise<void>;
}

export type Processors = { [K in JobKind]: (data: JobData<K>, job: JobHandle) => Promise<unknown> };

/** What a job whose processor threw does next, as the failure policy decides; the workers map it to BullMQ. */
export type JobOutcome =
  | { then: "delay"; delayMs: number }
  | { then: "complete"; result: { outcome: string } }
  | { then: "stop"; reason: string }
  | { then: "rethrow" };
