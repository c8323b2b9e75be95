import type { Db } from "../db/client.js";
import type { Prediction } from "../replicate/schemas.js";
import { lockConnectionForSync } from "../repositories/connections.js";
import { usageDate, writePredictions } from "../repositories/usage.js";
import { advanceCheckpoint, parseCheckpoint, type Checkpoint } from "./checkpoint.js";

export type PageOutcome =
  | { applied: true; checkpoint: Checkpoint; groups: number }
  /** Nothing written: the connection is gone, or this page was already applied / belongs to another run. */
  | { applied: false; reason: "not_connected" | "stale_run" | "already_applied"; checkpoint: Checkpoint | null };

export interface PageInput {
  connectionId: string;
  runId: string;
  /** 1-based number of the page in its run. */
  pageNumber: number;
  predictions: Prediction[];
  next: string | null;
}

/**
 * Writes one page in one short transaction: ledger upsert with the DailyUsage change it makes, and
 * the advanced checkpoint. The connection row is locked first, which serializes every
 * writer of that connection and makes a disconnect either wait for the page or stop it.
 */
export async function applyPage(db: Db, page: PageInput): Promise<PageOutcome> {
  return db.$transaction(async (tx) => {
    const connection = await lockConnectionForSync(tx, page.connectionId);
    const current = parseCheckpoint(connection?.sync_state);
    if (!connection || connection.status !== "connected") return { applied: false, reason: "not_connected", checkpoint: current };
    if (!current || current.runId !== page.runId) return { applied: false, reason: "stale_run", checkpoint: current };
    if (current.pagesDone >= page.pageNumber) return { applied: false, reason: "already_applied", checkpoint: current };
    if (current.pagesDone !== page.pageNumber - 1) return { applied: false, reason: "stale_run", checkpoint: current };

    const groups = await writePredictions(tx, page.connectionId, connection.workspace_id, page.predictions);
    const checkpoint = advanceCheckpoint(current, {
      next: page.next,
      createdAts: page.predictions.map((p) => p.created_at),
      days: page.predictions.map((p) => usageDate(p.created_at)),
    });
    await tx.connection.update({ where: { id: page.connectionId }, data: { syncState: checkpoint } });
    return { applied: true, checkpoint, groups };
  });
}
