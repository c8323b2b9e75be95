import type { JobState, Queue } from "bullmq";
import type { Redis } from "ioredis";

// What BullMQ holds of one connection, for its erasure: its jobs of every state (finished ones are kept a day or a week), their
// scheduler and deduplication keys, and the entries of each queue's event stream that name it.

const SETTLED: JobState[] = ["waiting", "delayed", "prioritized", "waiting-children", "completed", "failed"];
const PAGE = 500;

/** Removes the connection's jobs and traces from `queues`; `active` counts its jobs still running (not touched). */
export async function purgeConnectionJobs(
  redis: Redis,
  queues: Queue[],
  connectionId: string,
  keys: { schedulers: string[]; deduplication: string[] },
): Promise<{ removed: number; active: number }> {
  let removed = 0;
  for (const queue of queues) {
    for (const scheduler of keys.schedulers) await queue.removeJobScheduler(scheduler);
    const mine = await jobIdsOf(queue, SETTLED, connectionId);
    for (const id of mine) removed += await queue.remove(id);
    for (const id of keys.deduplication) await queue.removeDeduplicationKey(id);
    await dropStreamEntries(redis, queue.keys.events!, connectionId);
  }
  let active = 0;
  for (const queue of queues) active += (await jobIdsOf(queue, ["active"], connectionId)).length;
  return { removed, active };
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
