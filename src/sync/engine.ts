import type { Db } from "../db/client.js";
import type { Prediction } from "../replicate/schemas.js";
import { readRunState } from "../repositories/connections.js";
import { writePages } from "../repositories/usage.js";
import { openWindows, parseCheckpoint, planWrite, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";

export type PageOutcome =
  | {
      applied: true;
      checkpoint: Checkpoint;
      groups: number;
      /** Pages and predictions of this window written (a window's pages past its end are dropped). */
      pages: number;
      predictions: number;
      /** Windows this write split off, to be read by their own jobs. */
      newWindows: string[];
    }
  /** Nothing written: the connection is gone, or these pages were already applied / belong to another run. */
  | { applied: false; reason: "not_connected" | "stale_run" | "already_applied"; checkpoint: Checkpoint | null };

export interface PagesInput {
  connectionId: string;
  /** The checkpoint the pages were fetched from; they are written only if their window is still where it was. */
  checkpoint: Checkpoint;
  windowId: string;
  /** Consecutive pages of the window, in the order read. */
  pages: { next: string | null; predictions: Prediction[] }[];
  /** How many windows the run may read at once (a busy window is split up to this). */
  parallelism: number;
}

/**
 * Writes pages read from one window: ledger upsert, the usage change they make and the advanced
 * (perhaps split) window, in one atomic statement fenced on the window, so a page is never applied
 * twice or after a disconnect.
 */
export async function applyPages(db: Db, input: PagesInput): Promise<PageOutcome> {
  const { connectionId, checkpoint, windowId } = input;
  const expected = checkpoint.windows[windowId]!;
  const plan = planWrite(checkpoint, windowId, input.pages, input.parallelism);
  const split = Object.keys(plan.windows).length > 1;
  const written = await writePages(db, {
    connectionId,
    runId: checkpoint.runId,
    windowId,
    expected,
    windows: plan.windows,
    pages: plan.pages,
    days: plan.days,
    predictions: plan.predictions,
    splitFor: split ? openWindows(checkpoint).length : null,
  });
  if (written.syncState !== null) {
    const next = parseCheckpoint(written.syncState);
    if (!next) throw new Error("the write statement stored a checkpoint that does not parse");
    return {
      applied: true,
      checkpoint: next,
      groups: written.groups,
      pages: plan.pages,
      predictions: plan.predictions.length,
      newWindows: Object.keys(plan.windows).filter((id) => id !== windowId),
    };
  }

  // Why not (rare path): say so precisely, for the job's outcome and the tests.
  const row = await readRunState(db, connectionId);
  const current = parseCheckpoint(row?.syncState);
  if (row?.status !== "connected") return { applied: false, reason: "not_connected", checkpoint: current };
  const now = current?.runId === checkpoint.runId ? current.windows[windowId] : undefined;
  if (now && now.pagesDone > expected.pagesDone) return { applied: false, reason: "already_applied", checkpoint: current };
  // Only the split was refused (another window split meanwhile): plan again from what is stored now.
  if (split && now && sameWindow(now, expected)) return applyPages(db, { ...input, checkpoint: current! });
  return { applied: false, reason: "stale_run", checkpoint: current };
}

const sameWindow = (a: SyncWindow, b: SyncWindow) =>
  a.pagesDone === b.pagesDone && a.nextUrl === b.nextUrl && a.start === b.start && a.done === b.done;
