import type { AppContext, JobData, JobHandle } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import { readSyncState } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { completeRun, runStarter } from "../repositories/runs.js";
import { openWindows, parseCheckpoint, trainingsWindow, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";
import type { Slice, SliceResult } from "../sync/engine.js";
import { beginRun, runSlice } from "../sync/run.js";

export type SyncStepResult =
  | { outcome: "disconnected" | "stale" | "chain_running" }
  | { outcome: "slices_enqueued"; windows: number }
  | { outcome: "page_written"; page: number; pages: number; predictions: number }
  | { outcome: "completed"; pages: number; predictions: number; trainings: number; daysTouched: number };

/**
 * A tick (scheduler or syncNow) that starts a run reads the first slice of each window itself (a
 * small sync is one job) and chains what is left as slice jobs. A tick during a run ensures each
 * open window's slice job (deterministic ids: a no-op while it exists; resumes one lost to a crash
 * or a failed first slice), unless the tick that started the run is still reading it.
 */
export async function runTick(ctx: AppContext, connectionId: string, job: JobHandle): Promise<SyncStepResult> {
  const now = new Date();
  const run = await beginRun(ctx.db, connectionId, ctx.config.sync, now, job.id);
  if (!run) return { outcome: "disconnected" };
  const { checkpoint } = run;
  if (checkpoint.done) return finishRun(ctx, connectionId, checkpoint, job.id);
  if (run.started) {
    if (!run.tokenCiphertext) return { outcome: "disconnected" };
    const token = ctx.vault.open(run.tokenCiphertext, connectionId);
    // Once per run while due, beside its first slices: usage never waits for this optional read, nor fails with it.
    const deployments =
      run.deploymentsDue &&
      refreshDeployments(ctx, connectionId, token, { now, jobId: job.id }).catch((err: unknown) =>
        moduleLogger("sync", { connectionId, jobId: job.id }).warn("deployments not refreshed", { error: err }),
      );
    const [result] = await Promise.allSettled([readWindows(ctx, connectionId, token, checkpoint, job), deployments]);
    if (result.status === "rejected") throw result.reason;
    return result.value;
  }
  const starter = await runStarter(ctx.db, connectionId, checkpoint.runId);
  if (starter && starter !== job.id && (await ctx.queues.isActive("sync", starter))) return { outcome: "chain_running" };
  let enqueued = 0;
  for (const [window, w] of openWindows(checkpoint)) {
    const state = await ctx.queues.ensure("slice", { connectionId, runId: checkpoint.runId, window, page: w.pagesDone + 1 });
    if (state === "enqueued") enqueued++;
  }
  return enqueued > 0 ? { outcome: "slices_enqueued", windows: enqueued } : { outcome: "chain_running" };
}

/** One slice of a window; then chains its next slice (and those split off), or closes the run once every window is done. */
export async function runWindowSlice(ctx: AppContext, data: JobData<"slice">, job: JobHandle): Promise<SyncStepResult> {
  const { connectionId, runId, window, page } = data;
  const state = await readSyncState(ctx.db, ctx.vault, connectionId);
  if (!state) return { outcome: "disconnected" };
  const checkpoint = parseCheckpoint(state.syncState);
  const at = checkpoint?.runId === runId ? checkpoint.windows[window] : undefined;
  if (!checkpoint || !at || page > at.pagesDone + 1) return { outcome: "stale" };
  // Written by an attempt that crashed before chaining: every open window is chained again.
  if (page !== at.pagesDone + 1 || at.done) {
    const newWindows = openWindows(checkpoint).map(([id]) => id);
    const slice: Slice = { applied: true, windowId: window, checkpoint, pages: 0, predictions: 0, rejected: [], newWindows };
    return chainAndFinish(ctx, connectionId, checkpoint, [slice], job);
  }
  return readWindows(ctx, connectionId, state.token, checkpoint, job, [window]);
}

/**
 * Reads a slice of each of `windows` side by side, then chains and closes as runWindowSlice. A failed
 * window does not stop the others: their progress is chained, then the first error is thrown for the
 * failure policy (a retried tick finds the failed window without a job and enqueues it).
 */
async function readWindows(
  ctx: AppContext,
  connectionId: string,
  token: string,
  checkpoint: Checkpoint,
  job: JobHandle,
  windows = openWindows(checkpoint).map(([id]) => id),
): Promise<SyncStepResult> {
  const settings = { ...ctx.config.sync, prefetcher: ctx.prefetcher, deferClose: true };
  const settled = await Promise.allSettled(
    windows.map(async (id) => {
      const slice = await runSlice(ctx.db, ctx.replicate, token, connectionId, checkpoint, id, settings);
      if (!slice.applied || slice.rejected.length === 0) return slice;
      // One event per slice naming the skipped records (ids and reasons only) so support can see them.
      const { rejected } = slice;
      const page = checkpoint.windows[id]!.pagesDone + 1;
      const kind = checkpoint.windows[id]!.kind ?? "prediction";
      await recordEvent(ctx.db, {
        connectionId,
        jobId: job.id,
        kind: "record_rejected",
        message: `${rejected.length} ${kind}(s) from page ${page} on could not be kept and were skipped: ${rejected.map((r) => `${r.id} (${r.reason})`).join(", ")}`,
        detail: { page, kind, rejected },
      });
      return slice;
    }),
  );
  const failed = settled.find((s) => s.status === "rejected");
  let results = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  // A close read but not written completes the run in the same statement; when the run goes on, it is written as any page.
  const slicesOf = (rs: SliceResult[]) => rs.filter((s): s is Slice => s.applied);
  if (slicesOf(results).some((s) => s.closes) && !closed(slicesOf(results)).done) {
    results = await Promise.all(
      results.map(async (s) => {
        if (!s.applied || !s.closes) return s;
        const stored = await s.closes.store();
        return stored.applied ? { ...s, checkpoint: stored.checkpoint, closes: undefined } : stored;
      }),
    );
  }
  const slices = slicesOf(results);
  if (slices.length === 0) {
    if (failed) throw failed.reason;
    return { outcome: results.some((s) => !s.applied && s.reason === "not_connected") ? "disconnected" : "stale" };
  }
  const result = await chainAndFinish(ctx, connectionId, checkpoint, slices, job);
  if (failed) throw failed.reason;
  return result;
}

/** How far a stored checkpoint is: each write adds at least one page to one window, so a later write has more. */
const progressOf = (cp: Checkpoint) => Object.values(cp.windows).reduce((n, w) => n + w.pagesDone, cp.done ? 1 : 0);

/** The latest stored checkpoint of the slices, with the closes they read and did not write. */
function closed(slices: Slice[]): Checkpoint {
  const latest = slices.reduce((a, b) => (progressOf(b.checkpoint) > progressOf(a.checkpoint) ? b : a)).checkpoint;
  const windows = { ...latest.windows };
  for (const { windowId, closes } of slices) if (closes) windows[windowId] = closes.window;
  return { ...latest, windows, done: Object.values(windows).every((w) => w.done) };
}

/**
 * Enqueues the next slice of each open window the slices hand on (its own unless read to its
 * close, which its checkpoint still shows open, and any split off); closes the run once all are done.
 */
async function chainAndFinish(
  ctx: AppContext,
  connectionId: string,
  from: Checkpoint,
  slices: Slice[],
  job: JobHandle,
): Promise<SyncStepResult> {
  for (const { checkpoint, windowId, newWindows, closes } of slices) {
    for (const id of new Set(closes ? newWindows : [windowId, ...newWindows])) {
      const w = checkpoint.windows[id]!;
      if (!w.done) await ctx.queues.enqueue("slice", { connectionId, runId: checkpoint.runId, window: id, page: w.pagesDone + 1 });
    }
  }
  // The write that committed last saw every window: if the run is done, the latest checkpoint says so.
  const latest = closed(slices);
  if (latest.done) {
    const closing = Object.fromEntries(slices.flatMap((s) => (s.closes ? [[s.windowId, s.checkpoint.windows[s.windowId]!]] : [])));
    return finishRun(ctx, connectionId, latest, job.id, closing);
  }
  // A run that ends in this job says so in its result; progress is for jobs that hand work on.
  await job.updateProgress({ pagesDone: latest.pagesDone, predictionsSeen: latest.predictionsSeen, trainingsSeen: latest.trainingsSeen });
  const sum = (f: (s: Slice) => number) => slices.reduce((n, s) => n + f(s), 0);
  return { outcome: "page_written", page: from.pagesDone + 1, pages: sum((s) => s.pages), predictions: sum((s) => s.predictions) };
}

/** Closes a run whose windows are all done, with its sync_completed event; only one caller succeeds. */
async function finishRun(
  ctx: AppContext,
  connectionId: string,
  cp: Checkpoint,
  jobId?: string,
  closing?: Record<string, SyncWindow>,
): Promise<SyncStepResult> {
  const [pages, predictions, trainings, daysTouched] = [cp.pagesDone, cp.predictionsSeen, cp.trainingsSeen, cp.daysTouched.length];
  const trainingPages = trainingsWindow(cp)?.pagesDone ?? 0;
  const detail = { runId: cp.runId, pages, predictions, trainingPages, trainings, daysTouched };
  const message = `sync finished: ${predictions} predictions in ${pages} pages and ${trainings} trainings in ${trainingPages} pages, ${daysTouched} days updated`;
  const completed = await completeRun(ctx.db, connectionId, cp, { jobId, kind: "sync_completed", message, detail }, closing);
  if (!completed) return { outcome: "stale" };
  moduleLogger("sync", { connectionId, jobId }).info("sync run completed", { ...detail, startedAt: cp.startedAt });
  // A syncNow during the run asked for what it could not read: the next run starts now.
  if (completed.requested) await ctx.queues.enqueue("tick", { connectionId }, { afterActive: true });
  return { outcome: "completed", pages, predictions, trainings, daysTouched };
}
