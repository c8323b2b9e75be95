import type { AppContext, JobData } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import type { RejectedRecord } from "../replicate/schemas.js";
import { readSyncState, storedToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { completeRun } from "../repositories/runs.js";
import { openWindows, parseCheckpoint, type Checkpoint } from "../domain/checkpoint.js";
import type { UsageKind } from "../domain/usage-measures.js";
import { beginRun, runSlice } from "../sync/run.js";

export type SyncStepResult =
  | { outcome: "disconnected" | "stale" | "chain_running" }
  | { outcome: "slices_enqueued"; windows: number }
  | { outcome: "page_written"; page: number; pages: number; predictions: number }
  | { outcome: "completed"; pages: number; predictions: number; trainings: number; daysTouched: number };

/** What a slice job reports while it runs. */
export interface JobProgress {
  id?: string;
  updateProgress(progress: object): Promise<void>;
}

/**
 * A tick (scheduler or syncNow) starts a run or continues the current one by making sure each open
 * window has its slice job. Slice jobs have deterministic ids, so a tick during a run is a no-op.
 */
export async function runTick(ctx: AppContext, connectionId: string, jobId?: string): Promise<SyncStepResult> {
  const run = await beginRun(ctx.db, connectionId, ctx.config.sync, new Date(), jobId);
  if (!run) return { outcome: "disconnected" };
  const { checkpoint } = run;
  if (checkpoint.done) return finishRun(ctx, connectionId, checkpoint, jobId);
  let enqueued = 0;
  for (const [window, w] of openWindows(checkpoint)) {
    const state = await ctx.queues.ensure("slice", { connectionId, runId: checkpoint.runId, window, page: w.pagesDone + 1 });
    if (state === "enqueued") enqueued++;
  }
  // Once per run, beside its first slices: usage never waits for this optional read.
  const stored = run.started ? await storedToken(ctx.db, ctx.vault, connectionId) : null;
  if (stored) await refreshDeployments(ctx, connectionId, stored.token, { jobId });
  return enqueued > 0 ? { outcome: "slices_enqueued", windows: enqueued } : { outcome: "chain_running" };
}

/** One event per slice naming the skipped predictions or trainings (ids and reasons only) so support can see them. */
async function recordRejected(
  ctx: AppContext,
  connectionId: string,
  jobId: string | undefined,
  at: { page: number; kind: UsageKind },
  rejected: RejectedRecord[],
) {
  const { page, kind } = at;
  await recordEvent(ctx.db, {
    connectionId,
    jobId,
    kind: "record_rejected",
    level: "warn",
    message: `${rejected.length} ${kind}(s) from page ${page} on could not be kept and were skipped: ${rejected.map((r) => `${r.id} (${r.reason})`).join(", ")}`,
    detail: { page, kind, rejected },
  });
}

/**
 * One slice of a window: read and write its pages for a bounded time, then chain the window's next
 * slice (and the first slice of any window split off), or close the run when every window is done.
 */
export async function runWindowSlice(ctx: AppContext, data: JobData<"slice">, job: JobProgress): Promise<SyncStepResult> {
  const { connectionId, runId, window, page } = data;
  const state = await readSyncState(ctx.db, ctx.vault, connectionId);
  if (!state) return { outcome: "disconnected" };
  const checkpoint = parseCheckpoint(state.syncState);
  const at = checkpoint?.runId === runId ? checkpoint.windows[window] : undefined;
  if (!checkpoint || !at || page > at.pagesDone + 1) return { outcome: "stale" };

  let current = checkpoint;
  let written = { pages: 0, predictions: 0 };
  // Unless this slice was written by an attempt that crashed before chaining: then every open window is chained.
  let next = openWindows(current).map(([id]) => id);
  if (page === at.pagesDone + 1 && !at.done) {
    const slice = await runSlice(ctx.db, ctx.replicate, state.token, connectionId, checkpoint, window, ctx.config.sync, ctx.prefetcher);
    if (!slice.applied) return { outcome: slice.reason === "not_connected" ? "disconnected" : "stale" };
    current = slice.checkpoint;
    written = { pages: slice.pages, predictions: slice.predictions };
    next = [window, ...slice.newWindows];
    if (slice.rejected.length > 0) await recordRejected(ctx, connectionId, job.id, { page, kind: at.kind ?? "prediction" }, slice.rejected);
    await job.updateProgress({
      pagesDone: current.pagesDone,
      predictionsSeen: current.predictionsSeen,
      trainingsSeen: current.trainingsSeen,
    });
  }
  for (const id of next) {
    const w = current.windows[id]!;
    if (!w.done) await ctx.queues.enqueue("slice", { connectionId, runId, window: id, page: w.pagesDone + 1 });
  }
  if (!current.done) return { outcome: "page_written", page, ...written };
  return finishRun(ctx, connectionId, current, job.id);
}

/** Closes a run whose windows are all done, with its sync_completed event; only one caller succeeds. */
async function finishRun(ctx: AppContext, connectionId: string, checkpoint: Checkpoint, jobId?: string): Promise<SyncStepResult> {
  const summary = await completeRun(ctx.db, connectionId, checkpoint, (done) => ({
    jobId,
    kind: "sync_completed",
    level: "info",
    message: `sync finished: ${done.predictions} predictions in ${done.pages} pages and ${done.trainings} trainings in ${done.trainingPages} pages, ${done.daysTouched} days updated`,
    detail: {
      runId: done.runId,
      pages: done.pages,
      predictions: done.predictions,
      trainingPages: done.trainingPages,
      trainings: done.trainings,
      daysTouched: done.daysTouched,
    },
  }));
  if (!summary) return { outcome: "stale" };
  moduleLogger("sync", { connectionId, jobId }).info("sync run completed", { ...summary });
  const { pages, predictions, trainings, daysTouched } = summary;
  return { outcome: "completed", pages, predictions, trainings, daysTouched };
}
