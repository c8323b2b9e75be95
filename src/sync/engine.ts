import type { Db } from "../db/client.js";
import type { RejectedRecord } from "../replicate/schemas.js";
import { readRunState } from "../repositories/connections.js";
import { writePages, type UsageRecord } from "../repositories/usage.js";
import { parseCheckpoint, planWrite, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";

/** What writing pages of window `windowId` did: one write (applyPages) or a slice's writes together (runSlice). */
export type SliceResult =
  | Slice
  /** Nothing written: the connection is gone, or these pages were already applied / belong to another run. */
  | { applied: false; reason: "not_connected" | "stale_run" | "already_applied" };

export interface Slice {
  applied: true;
  windowId: string;
  checkpoint: Checkpoint;
  /** Pages and predictions of this window written (a window's pages past its end are dropped). */
  pages: number;
  predictions: number;
  rejected: RejectedRecord[];
  /** Windows split off, to be read by their own jobs. */
  newWindows: string[];
  /** With `deferClose`: the pages only closed the window, not stored (`checkpoint` has it open); `store` writes it. */
  closes?: { window: SyncWindow; store: () => Promise<SliceResult> };
}

/**
 * Writes consecutive pages of window `windowId`: ledger upsert, the usage change and the advanced
 * window (split if busy) in one statement fenced on the window, so a page is never applied twice
 * or after a disconnect.
 */
export async function applyPages(
  db: Db,
  connectionId: string,
  checkpoint: Checkpoint,
  windowId: string,
  pages: { next: string | null; results: UsageRecord[]; rejected: RejectedRecord[] }[],
  settings: {
    /** How many open windows a busy window may be split into. */
    parallelism: number;
    /** Asked when a split is planned: a throttled token is not split (more windows would only queue behind its rate). */
    throttled?: () => Promise<boolean>;
    /** Pages that only close the window are not written: the caller completes the run with the close, or stores it. */
    deferClose?: boolean;
  },
): Promise<SliceResult> {
  const { parallelism, throttled, deferClose } = settings;
  let plan = planWrite(checkpoint, windowId, pages, parallelism);
  if (plan.splitFor !== null && (await throttled?.())) plan = planWrite(checkpoint, windowId, pages, 1);
  const window = plan.windows[windowId]!;
  const used = pages.slice(0, plan.pages);
  const applied = { applied: true, windowId, pages: plan.pages, predictions: plan.predictions.length } as const;
  if (deferClose && window.done && plan.predictions.length === 0 && plan.splitFor === null && used.every((p) => p.rejected.length === 0)) {
    const store = () => applyPages(db, connectionId, checkpoint, windowId, pages, { parallelism, throttled });
    return { ...applied, checkpoint, rejected: [], newWindows: [], closes: { window, store } };
  }
  const stored = parseCheckpoint(await writePages(db, connectionId, plan));
  if (stored) {
    const newWindows = Object.keys(plan.windows).filter((id) => id !== windowId);
    return { ...applied, checkpoint: stored, rejected: used.flatMap((p) => p.rejected), newWindows };
  }

  // Why not (rare path): say so precisely, for the job's outcome and the tests.
  const row = await readRunState(db, connectionId);
  const current = parseCheckpoint(row?.syncState);
  if (row?.status !== "connected") return { applied: false, reason: "not_connected" };
  const now = current?.runId === checkpoint.runId ? current.windows[windowId] : undefined;
  if (now && now.pagesDone > plan.expected.pagesDone) return { applied: false, reason: "already_applied" };
  // Only the split was refused (another window split meanwhile): plan again from what is stored now.
  if (plan.splitFor !== null && now && sameWindow(now, plan.expected)) {
    return applyPages(db, connectionId, current!, windowId, pages, { parallelism, throttled });
  }
  return { applied: false, reason: "stale_run" };
}

const sameWindow = (a: SyncWindow, b: SyncWindow) =>
  a.pagesDone === b.pagesDone && a.nextUrl === b.nextUrl && a.start === b.start && a.done === b.done;
