import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import type { RejectedRecord } from "../replicate/schemas.js";
import { readSyncState } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { completeRun } from "../repositories/runs.js";
import { parseCheckpoint, type Checkpoint } from "../sync/checkpoint.js";
import { beginRun, syncPage } from "../sync/run.js";

export type SyncStepResult =
  | { outcome: "disconnected" | "stale" | "chain_running" }
  | { outcome: "page_enqueued"; page: number }
  | { outcome: "page_written"; page: number; predictions: number }
  | { outcome: "completed"; pages: number; predictions: number; daysTouched: number };

/** What a page job reports while it runs. */
export interface JobProgress {
  id?: string;
  updateProgress(progress: object): Promise<void>;
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
  // Page jobs have deterministic ids, so a tick during a run finds the chain running.
  if ((await ctx.queues.ensurePage(connectionId, checkpoint.runId, page)) === "running") return { outcome: "chain_running" };
  return { outcome: "page_enqueued", page };
}

/** One event per page naming the skipped predictions (ids and reasons only) so support can see them. */
async function recordRejected(ctx: AppContext, connectionId: string, jobId: string | undefined, page: number, rejected: RejectedRecord[]) {
  await recordEvent(ctx.db, {
    connectionId,
    jobId,
    kind: "record_rejected",
    level: "warn",
    message: `${rejected.length} prediction(s) on page ${page} could not be kept and were skipped: ${rejected.map((r) => `${r.id} (${r.reason})`).join(", ")}`,
    detail: { page, rejected },
  });
}

/** One page of a run: fetch, write (ledger, daily totals, checkpoint), then chain the next page or close the run. */
export async function runPage(
  ctx: AppContext,
  data: { connectionId: string; runId: string; page: number },
  job: JobProgress,
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
    if (outcome.rejected.length > 0) await recordRejected(ctx, connectionId, job.id, page, outcome.rejected);
    await job.updateProgress({ pagesDone: current.pagesDone, predictionsSeen: current.predictionsSeen });
  }
  // Also reached when this page was written by an attempt that crashed before chaining.
  if (!current.done) {
    await ctx.queues.enqueuePage(connectionId, runId, current.pagesDone + 1);
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
