import type { Db } from "../db/client.js";
import { moduleLogger } from "../logger.js";
import { jobIds, type Queues, type SyncJobData } from "./queues.js";

const log = moduleLogger("schedulers");

// The only place that creates or removes per-connection sync schedulers.

export async function upsertSyncScheduler(queues: Queues, connectionId: string, intervalMinutes: number): Promise<void> {
  const data: SyncJobData = { connectionId };
  await queues.sync.upsertJobScheduler(jobIds.scheduler(connectionId), { every: intervalMinutes * 60_000 }, { name: "tick", data });
}

export async function removeSyncScheduler(queues: Queues, connectionId: string): Promise<void> {
  await queues.sync.removeJobScheduler(jobIds.scheduler(connectionId));
}

/**
 * Makes the set of schedulers equal the set of connected connections. Run at start-up: BullMQ can
 * race when several processes upsert at once, and a crash can leave one behind.
 */
export async function reconcileSchedulers(db: Db, queues: Queues, intervalMinutes: number): Promise<{ added: number; removed: number }> {
  const connected = await db.connection.findMany({ where: { status: "connected" }, select: { id: true } });
  const wanted = new Set(connected.map((c) => jobIds.scheduler(c.id)));
  const existing = await queues.sync.getJobSchedulers(0, -1);
  const have = new Set(existing.map((s) => s.key));
  let removed = 0;
  for (const key of have) {
    if (!wanted.has(key)) {
      await queues.sync.removeJobScheduler(key);
      removed++;
    }
  }
  let added = 0;
  for (const c of connected) {
    if (!have.has(jobIds.scheduler(c.id))) {
      await upsertSyncScheduler(queues, c.id, intervalMinutes);
      added++;
    }
  }
  if (added || removed) log.info("schedulers reconciled", { added, removed });
  return { added, removed };
}

/** Removes every waiting or delayed job of the connection (active ones see the disconnect and stop). */
export async function removePendingJobs(queues: Queues, connectionId: string): Promise<number> {
  let removed = 0;
  for (const queue of [queues.sync, queues.verify] as const) {
    const jobs = await queue.getJobs(["waiting", "delayed", "prioritized", "waiting-children"]);
    for (const job of jobs) {
      if (job?.data.connectionId === connectionId) {
        await job.remove().catch(() => undefined); // already taken by a worker: it will stop by itself
        removed++;
      }
    }
  }
  return removed;
}
