import type { Db } from "../db/client.js";
import type { RejectedRecord } from "../replicate/schemas.js";
import { readRunState } from "../repositories/connections.js";
import { writePages, type UsageRecord } from "../repositories/usage.js";
import { parseCheckpoint, planWrite, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";

/** What writing a window's pages did: one write (applyPages) or a slice's writes together (runSlice). */
export type SliceResult =
  | {
      applied: true;
      checkpoint: Checkpoint;
      /** Pages and predictions of this window written (a window's pages past its end are dropped). */
      pages: number;
      predictions: number;
      rejected: RejectedRecord[];
      /** Windows split off, to be read by their own jobs. */
      newWindows: string[];
      /** With `deferClose`: the pages closed the window with nothing to write, and that is not stored yet (see applyPages). */
      closes?: WindowClose;
    }
  /** Nothing written: the connection is gone, or these pages were already applied / belong to another run. */
  | { applied: false; reason: "not_connected" | "stale_run" | "already_applied" };

/** A window closed by pages holding nothing to write: `expected` as stored, `window` once closed; `store` writes it as any page. */
export interface WindowClose {
  expected: SyncWindow;
  window: SyncWindow;
  store: () => Promise<SliceResult>;
}

/**
 * Writes consecutive pages read from window `windowId` of `checkpoint`: ledger upsert, the
 * usage change they make and the advanced window, split into up to `parallelism` open windows
 * if it turned out busy, in one atomic statement fenced on the window, so a page is never applied
 * twice or after a disconnect. `throttled` is asked only when a split is planned: a token Replicate
 * is throttling is not split further, since more windows would only queue behind its learned rate.
 * With `deferClose`, pages that only close the window (an account without new trainings) are not
 * written: the caller completes the run with the close in the same statement, or stores it.
 */
export async function applyPages(
  db: Db,
  connectionId: string,
  checkpoint: Checkpoint,
  windowId: string,
  pages: { next: string | null; results: UsageRecord[]; rejected: RejectedRecord[] }[],
  parallelism: number,
  { throttled, deferClose = false }: { throttled?: () => Promise<boolean>; deferClose?: boolean } = {},
): Promise<SliceResult> {
  let plan = planWrite(checkpoint, windowId, pages, parallelism);
  if (plan.splitFor !== null && (await throttled?.())) plan = planWrite(checkpoint, windowId, pages, 1);
  const window = plan.windows[windowId]!;
  const used = pages.slice(0, plan.pages);
  if (deferClose && window.done && plan.predictions.length === 0 && plan.splitFor === null && used.every((p) => p.rejected.length === 0)) {
    const store = () => applyPages(db, connectionId, checkpoint, windowId, pages, parallelism, { throttled });
    const closes = { expected: plan.expected, window, store };
    return { applied: true, checkpoint, pages: plan.pages, predictions: 0, rejected: [], newWindows: [], closes };
  }
  const stored = parseCheckpoint(await writePages(db, connectionId, plan));
  if (stored) {
    return {
      applied: true,
      checkpoint: stored,
      pages: plan.pages,
      predictions: plan.predictions.length,
      rejected: used.flatMap((p) => p.rejected),
      newWindows: Object.keys(plan.windows).filter((id) => id !== windowId),
    };
  }

  // Why not (rare path): say so precisely, for the job's outcome and the tests.
  const row = await readRunState(db, connectionId);
  const current = parseCheckpoint(row?.syncState);
  if (row?.status !== "connected") return { applied: false, reason: "not_connected" };
  const now = current?.runId === checkpoint.runId ? current.windows[windowId] : undefined;
  if (now && now.pagesDone > plan.expected.pagesDone) return { applied: false, reason: "already_applied" };
  // Only the split was refused (another window split meanwhile): plan again from what is stored now.
  if (plan.splitFor !== null && now && sameWindow(now, plan.expected)) {
    return applyPages(db, connectionId, current!, windowId, pages, parallelism, { throttled });
  }
  return { applied: false, reason: "stale_run" };
}

const sameWindow = (a: SyncWindow, b: SyncWindow) =>
  a.pagesDone === b.pagesDone && a.nextUrl === b.nextUrl && a.start === b.start && a.done === b.done;
