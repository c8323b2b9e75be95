import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "./db/client.js";
import type { JobQueues } from "./queue/queues.js";
import { syncAges } from "./repositories/connection-views.js";
import { countByStatus } from "./repositories/connections.js";

const JOB_STATES = ["waiting", "active", "delayed", "prioritized", "failed"] as const;

/** Queue depth and sync ages are read at scrape time (the same in every process); durations and 429s count per process. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly jobDuration = new Histogram({
    name: "rus_job_duration_seconds",
    help: "Time a job spent running, by queue, job name and outcome.",
    labelNames: ["queue", "name", "outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: "rus_replicate_rate_limited_total",
    help: "Requests Replicate answered with 429 (source=header|body|default), or held back by the local cap (source=local_cap).",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });

  constructor(queues: JobQueues, db: Db) {
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], collect: (g: Gauge<L>) => Promise<void>) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect: async function () {
          this.reset();
          await collect(this);
        },
      });
    gauge("rus_queue_jobs", "Jobs in each queue by state.", ["queue", "state"], async (g) => {
      // At once: while Redis is down each read waits out its timeout, so a scrape waits for one, not one per queue.
      const all = queues.all();
      const counts = await Promise.all(all.map((q) => q.getJobCounts(...JOB_STATES).catch(() => null)));
      // Redis not answering leaves the series out (scrape still succeeds); readiness says why.
      all.forEach((queue, i) => {
        for (const state of JOB_STATES) if (counts[i]) g.set({ queue: queue.name, state }, counts[i][state] ?? 0);
      });
    });
    gauge(
      "rus_connection_last_sync_age_seconds",
      "Seconds since each connected connection's data was last fresh: the start of its last finished sync run, or its verification while the first backfill has not finished (so a stuck backfill ages too).",
      ["connection_id", "workspace_id"],
      async (g) => {
        const now = Date.now();
        for (const r of await syncAges(db)) g.set({ connection_id: r.id, workspace_id: r.workspaceId }, (now - r.freshAt.getTime()) / 1000);
      },
    );
    gauge("rus_connections", "Connections by status.", ["status"], async (g) => {
      for (const r of await countByStatus(db)) g.set({ status: r.status }, r.count);
    });
  }
}
