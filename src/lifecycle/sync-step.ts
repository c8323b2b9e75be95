import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import { jobIds, type SyncJobData } from "../queue/queues.js";
import { readSyncState } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { parseCheckpoint, type Checkpoint } from "../sync/checkpoint.js";
import { beginRun, completeRun, syncPage } from "../sync/run.js";

export type SyncStepResult =
  | { outcome: "disconnected" | "stale" | "chain_running" }
  | { outcome: "page_enqueued"; page: number }
  | { outcome: "page_written"; page: number; predictions: number }
  | { outcome: "completed"; pages: number; predictions: number; daysTouched: number };

/** syncNow and the first backfill: one pending tick per connection at most (BullMQ deduplication). */
export async function kickSync(ctx: AppContext, connectionId: string): Promise<void> {
  const data: SyncJobData = { connectionId };
  await ctx.queues.sync.add("tick", data, { deduplication: { id: jobIds.kick(connectionId) } });
}

/**
 * A tick (scheduler or syncNow) starts a run or continues the current one by enqueueing the page
 * job after the checkpoint. Page jobs have deterministic ids, so a tick during a run is a no-op.
 */
export async function runTick(ctx: AppContext, connectionId: string, jobId?: string): Promise<SyncStepResult> {
  const checkpoint = await beginRun(ctx.db, connectionId, ctx.config.sync, new Date(), (tx, started) =>
    recordEvent(tx, {
      connectionId,
      jobId,
      kind: "sync_started",
      level: "info",
      message: `sync started for predictions created from ${started.windowStart} to ${started.windowEnd}`,
      detail: { runId: started.runId, windowStart: started.windowStart, windowEnd: started.windowEnd },
    }),
  );
  if (!checkpoint) return { outcome: "disconnected" };
  const page = checkpoint.pagesDone + 1;
  const id = jobIds.page(connectionId, checkpoint.runId, page);
  const existing = await ctx.queues.sync.getJob(id);
  if (existing) {
    // The checkpoint still wants this page, so a finished job for it failed for good or stopped
    // without writing (the connection was paused meanwhile): run it again, the run resumes there.
    const state = await existing.getState();
    if (state !== "failed" && state !== "completed") return { outcome: "chain_running" };
    await existing.remove();
  }
  await enqueuePage(ctx, connectionId, checkpoint.runId, page);
  return { outcome: "page_enqueued", page };
}

async function enqueuePage(ctx: AppContext, connectionId: string, runId: string, page: number): Promise<void> {
  const data: SyncJobData = { connectionId, runId, page };
  await ctx.queues.sync.add("page", data, { jobId: jobIds.page(connectionId, runId, page) });
}

/** One page of a run: fetch, write (ledger, daily totals, checkpoint), then chain the next page or close the run. */
export async function runPage(
  ctx: AppContext,
  data: Required<SyncJobData>,
  job: { id?: string; updateProgress(p: object): Promise<void> },
): Promise<SyncStepResult> {
  const { connectionId, runId, page } = data;
  const state = await readSyncState(ctx.db, ctx.vault, connectionId);
  if (!state) return { outcome: "disconnected" };
  const checkpoint = parseCheckpoint(state.syncState);
  if (checkpoint?.runId !== runId || page > checkpoint.pagesDone + 1) return { outcome: "stale" };
  await refreshDeployments(ctx, connectionId, state.token);

  let current: Checkpoint = checkpoint;
  let written = 0;
  if (page === checkpoint.pagesDone + 1 && !checkpoint.done) {
    const outcome = await syncPage(ctx.db, ctx.replicate, state.token, checkpoint, connectionId, ctx.prefetcher);
    if (!outcome.applied) return { outcome: outcome.reason === "not_connected" ? "disconnected" : "stale" };
    current = outcome.checkpoint;
    written = outcome.checkpoint.predictionsSeen - checkpoint.predictionsSeen;
    await job.updateProgress({ pagesDone: current.pagesDone, predictionsSeen: current.predictionsSeen });
  }
  // Also reached when this page was written by an attempt that crashed before chaining.
  if (!current.done) {
    await enqueuePage(ctx, connectionId, runId, current.pagesDone + 1);
    return { outcome: "page_written", page, predictions: written };
  }
  const summary = await completeRun(ctx.db, connectionId, runId, (tx, done) =>
    recordEvent(tx, {
      connectionId,
      jobId: job.id,
      kind: "sync_completed",
      level: "info",
      message: `sync finished: ${done.predictions} predictions in ${done.pages} pages, ${done.daysTouched} days updated`,
      detail: { runId, pages: done.pages, predictions: done.predictions, daysTouched: done.daysTouched },
    }),
  );
  if (!summary) return { outcome: "stale" };
  moduleLogger("sync", { connectionId, jobId: job.id }).info("sync run completed", { ...summary });
  return { outcome: "completed", pages: summary.pages, predictions: summary.predictions, daysTouched: summary.daysTouched };
}
