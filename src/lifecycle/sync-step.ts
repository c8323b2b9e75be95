import type { AppContext, JobData, JobHandle } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import type { RejectedRecord } from "../replicate/schemas.js";
import { readSyncState } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { completeRun, runStarter } from "../repositories/runs.js";
import { openWindows, parseCheckpoint, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";
import type { UsageKind } from "../domain/usage-measures.js";
import type { SliceResult, WindowClose } from "../sync/engine.js";
import { beginRun, runSlice } from "../sync/run.js";

export type SyncStepResult =
  | { outcome: "disconnected" | "stale" | "chain_running" }
  | { outcome: "slices_enqueued"; windows: number }
  | { outcome: "page_written"; page: number; pages: number; predictions: number }
  | { outcome: "completed"; pages: number; predictions: number; trainings: number; daysTouched: number };

/** What a sync job uses of its handle: its id, and where it reports progress while it runs. */
type JobProgress = Pick<JobHandle, "id" | "updateProgress">;

/**
 * A tick (scheduler or syncNow) starts a run or continues the current one. The tick that starts a
 * run reads the first slice of each of its windows itself, so a sync that fits in one slice is one
 * job; windows left open (and any split off) are chained as slice jobs. A tick during a run makes
 * sure each open window has its slice job: slice jobs have deterministic ids, so that is a no-op
 * while they exist, and it resumes windows whose job was lost (a crash, a failed first slice); it
 * leaves the run alone while the tick that started it is still reading it (two ticks at connect).
 */
export async function runTick(ctx: AppContext, connectionId: string, job: JobProgress): Promise<SyncStepResult> {
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
    const [result] = await Promise.allSettled([readWindows(ctx, { connectionId, token, checkpoint }, job), deployments]);
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
  const run = { connectionId, token: state.token, checkpoint };
  // Written by an attempt that crashed before chaining: every open window is chained again.
  if (page !== at.pagesDone + 1 || at.done)
    return chainAndFinish(ctx, run, [{ checkpoint, next: openWindows(checkpoint).map(([id]) => id) }], job);
  return readWindows(ctx, run, job, [window]);
}

interface RunAt {
  connectionId: string;
  token: string;
  checkpoint: Checkpoint;
}

/** What one window's slice wrote, and the windows (itself, any split off) whose next slice it hands on. */
interface WindowSlice {
  checkpoint: Checkpoint;
  next: string[];
  pages?: number;
  predictions?: number;
  /** Read, not yet written: the window's close (see applyPages' deferClose). */
  closes?: WindowClose & { id: string };
}

/**
 * Reads a slice of each of `windows` (every open window by default) side by side, as that many slice
 * jobs would, then chains their next slices and closes the run when it is done. A window that fails
 * does not stop the others: their progress is chained, then the first error is thrown for the job's
 * failure policy (a retried tick finds the failed window without a job and enqueues it).
 */
async function readWindows(ctx: AppContext, run: RunAt, job: JobProgress, windows = openWindows(run.checkpoint).map(([id]) => id)) {
  const settled = await Promise.allSettled(windows.map((id) => readWindow(ctx, run, id, job.id)));
  const done = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  let slices = done.filter((s) => typeof s !== "string");
  const failed = settled.find((s) => s.status === "rejected");
  let latest = slices.length > 0 ? closed(slices) : undefined;
  // A close read but not written completes the run in the same statement; when the run goes on, it is written as any page.
  if (latest && !latest.done && slices.some((s) => s.closes)) {
    const stored = await Promise.all(
      slices.map((s) => (s.closes ? s.closes.store().then((r) => windowSlice(ctx, run, s.closes!.id, r, job.id)) : s)),
    );
    done.push(...stored.filter((s) => typeof s === "string"));
    slices = stored.filter((s) => typeof s !== "string");
    latest = slices.length > 0 ? closed(slices) : undefined;
  }
  if (!latest) {
    if (failed) throw failed.reason;
    return { outcome: done.includes("disconnected") ? "disconnected" : "stale" } satisfies SyncStepResult;
  }
  // A run that ends in this job says so in its result; progress is for jobs that hand work on.
  if (!latest.done) {
    await job.updateProgress({ pagesDone: latest.pagesDone, predictionsSeen: latest.predictionsSeen, trainingsSeen: latest.trainingsSeen });
  }
  const result = await chainAndFinish(ctx, run, slices, job);
  if (failed) throw failed.reason;
  return result;
}

/** How far a stored checkpoint is: each write adds at least one page to one window, so a later write has more. */
const progressOf = (cp: Checkpoint) => Object.values(cp.windows).reduce((n, w) => n + w.pagesDone, cp.done ? 1 : 0);

/** The latest stored checkpoint of the slices, with the closes they read and did not write. */
function closed(slices: WindowSlice[]): Checkpoint {
  const latest = slices.reduce((a, b) => (progressOf(b.checkpoint) > progressOf(a.checkpoint) ? b : a)).checkpoint;
  const windows = { ...latest.windows };
  for (const { closes } of slices) if (closes) windows[closes.id] = closes.window;
  return { ...latest, windows, done: Object.values(windows).every((w) => w.done) };
}

/** One window's slice, or why nothing was written. */
async function readWindow(ctx: AppContext, run: RunAt, window: string, jobId?: string) {
  const { connectionId, token, checkpoint } = run;
  const settings = { prefetcher: ctx.prefetcher, deferClose: true };
  const slice = await runSlice(ctx.db, ctx.replicate, token, connectionId, checkpoint, window, ctx.config.sync, settings);
  return windowSlice(ctx, run, window, slice, jobId);
}

async function windowSlice(ctx: AppContext, run: RunAt, window: string, slice: SliceResult, jobId?: string) {
  if (!slice.applied) return slice.reason === "not_connected" ? "disconnected" : "stale";
  const at = run.checkpoint.windows[window]!;
  const kind = at.kind ?? "prediction";
  if (slice.rejected.length > 0) await recordRejected(ctx, run.connectionId, jobId, { page: at.pagesDone + 1, kind }, slice.rejected);
  // A window read to its close hands nothing on (its checkpoint, not written yet, still has it open).
  const closes = slice.closes && { ...slice.closes, id: window };
  const next = closes ? [] : [window, ...slice.newWindows];
  return { checkpoint: slice.checkpoint, next, pages: slice.pages, predictions: slice.predictions, closes };
}

/** Enqueues the next slice of each window the slices hand on that is still open; closes the run once every window is done. */
async function chainAndFinish(ctx: AppContext, run: RunAt, slices: WindowSlice[], job: JobProgress): Promise<SyncStepResult> {
  const { connectionId } = run;
  for (const { checkpoint, next } of slices) {
    for (const id of next) {
      const w = checkpoint.windows[id]!;
      if (!w.done) await ctx.queues.enqueue("slice", { connectionId, runId: checkpoint.runId, window: id, page: w.pagesDone + 1 });
    }
  }
  // The write that committed last saw every window: if the run is done, the latest checkpoint says so.
  const latest = closed(slices);
  if (latest.done) {
    const closing = Object.fromEntries(slices.flatMap(({ closes }) => (closes ? [[closes.id, closes.expected]] : [])));
    return finishRun(ctx, connectionId, latest, job.id, closing);
  }
  const written = slices.reduce((sum, s) => ({ pages: sum.pages + (s.pages ?? 0), predictions: sum.predictions + (s.predictions ?? 0) }), {
    pages: 0,
    predictions: 0,
  });
  return { outcome: "page_written", page: run.checkpoint.pagesDone + 1, ...written };
}

/** Closes a run whose windows are all done, with its sync_completed event; only one caller succeeds. */
async function finishRun(
  ctx: AppContext,
  connectionId: string,
  checkpoint: Checkpoint,
  jobId?: string,
  closing?: Record<string, SyncWindow>,
): Promise<SyncStepResult> {
  const summary = await completeRun(
    ctx.db,
    connectionId,
    checkpoint,
    (done) => ({
      jobId,
      kind: "sync_completed",
      message: `sync finished: ${done.predictions} predictions in ${done.pages} pages and ${done.trainings} trainings in ${done.trainingPages} pages, ${done.daysTouched} days updated`,
      detail: {
        runId: done.runId,
        pages: done.pages,
        predictions: done.predictions,
        trainingPages: done.trainingPages,
        trainings: done.trainings,
        daysTouched: done.daysTouched,
      },
    }),
    closing,
  );
  if (!summary) return { outcome: "stale" };
  moduleLogger("sync", { connectionId, jobId }).info("sync run completed", { ...summary });
  const { pages, predictions, trainings, daysTouched } = summary;
  return { outcome: "completed", pages, predictions, trainings, daysTouched };
}
