import type { Db } from "../db/client.js";
import type { Prediction, RejectedRecord } from "../replicate/schemas.js";
import { readRunState } from "../repositories/connections.js";
import { usageDate, writePage } from "../repositories/usage.js";
import { advanceCheckpoint, parseCheckpoint, type Checkpoint } from "./checkpoint.js";

export type PageOutcome =
  | { applied: true; checkpoint: Checkpoint; groups: number; rejected: RejectedRecord[] }
  /** Nothing written: the connection is gone, or this page was already applied / belongs to another run. */
  | { applied: false; reason: "not_connected" | "stale_run" | "already_applied"; checkpoint: Checkpoint | null };

export interface PageInput {
  connectionId: string;
  /** The checkpoint the page was fetched from; the page is written only if it is still current. */
  checkpoint: Checkpoint;
  predictions: Prediction[];
  /** Records of the page that could not be kept; reported once the page is written. */
  rejected?: RejectedRecord[];
  next: string | null;
}

/**
 * Writes one page: ledger upsert, the DailyUsage change it makes and the advanced checkpoint, in one
 * atomic statement fenced on the checkpoint, so a page is never applied twice or after a disconnect.
 */
export async function applyPage(db: Db, page: PageInput): Promise<PageOutcome> {
  const checkpoint = advanceCheckpoint(page.checkpoint, {
    next: page.next,
    createdAts: page.predictions.map((p) => p.created_at),
    days: page.predictions.map((p) => usageDate(p.created_at)),
  });
  const written = await writePage(db, {
    connectionId: page.connectionId,
    expected: page.checkpoint,
    next: checkpoint,
    predictions: page.predictions,
  });
  if (written.applied) return { applied: true, checkpoint, groups: written.groups, rejected: page.rejected ?? [] };

  // Why not (rare path): say so precisely, for the job's outcome and the tests.
  const row = await readRunState(db, page.connectionId);
  const current = parseCheckpoint(row?.syncState);
  if (row?.status !== "connected") return { applied: false, reason: "not_connected", checkpoint: current };
  const sameRun = current?.runId === page.checkpoint.runId;
  if (sameRun && current.pagesDone > page.checkpoint.pagesDone) return { applied: false, reason: "already_applied", checkpoint: current };
  return { applied: false, reason: "stale_run", checkpoint: current };
}
