import type { Db } from "../db/client.js";
import { Prisma } from "../generated/prisma/client.js";
import { parseCheckpoint, type Checkpoint } from "../sync/checkpoint.js";
import { lockConnection, type LockedConnection } from "./connections.js";
import { oldestUnfinished } from "./usage.js";

type Tx = Prisma.TransactionClient;

export interface RunSummary {
  runId: string;
  startedAt: Date;
  pages: number;
  predictions: number;
  daysTouched: number;
}

/**
 * Starts a run, or returns the current one (unfinished, or finished but not yet completed) so a
 * crashed run resumes from its checkpoint. Null when the connection is not connected.
 */
export async function startRun(
  db: Db,
  connectionId: string,
  plan: (connection: LockedConnection, oldestUnfinished: Date | null) => Checkpoint,
  /** Runs in the same transaction when a new run starts (so "started" is recorded exactly once). */
  onStart?: (tx: Tx, checkpoint: Checkpoint) => Promise<void>,
): Promise<Checkpoint | null> {
  return db.$transaction(async (tx) => {
    const connection = await lockConnection(tx, connectionId);
    if (!connection || connection.status !== "connected") return null;
    const current = parseCheckpoint(connection.sync_state);
    if (current) return current;
    const checkpoint = plan(connection, await oldestUnfinished(tx, connectionId));
    await tx.connection.update({
      where: { id: connectionId },
      data: { syncState: checkpoint, lastSyncStartedAt: new Date(checkpoint.startedAt) },
    });
    await onStart?.(tx, checkpoint);
    return checkpoint;
  });
}

/**
 * Closes a finished run: lastSyncedAt becomes the run's start and the next window starts from its
 * end. Null (and no write) when that run is not the connection's current, finished run.
 */
export async function completeRun(
  db: Db,
  connectionId: string,
  runId: string,
  /** Runs in the same transaction, so "finished" is recorded exactly once even if the worker dies right after. */
  onComplete?: (tx: Tx, summary: RunSummary) => Promise<void>,
): Promise<RunSummary | null> {
  return db.$transaction(async (tx) => {
    const connection = await lockConnection(tx, connectionId);
    const checkpoint = parseCheckpoint(connection?.sync_state);
    if (!connection || connection.status !== "connected" || checkpoint?.runId !== runId || !checkpoint.done) return null;
    const startedAt = new Date(checkpoint.startedAt);
    await tx.connection.update({
      where: { id: connectionId },
      data: { lastSyncedAt: startedAt, highWaterMark: new Date(checkpoint.windowEnd), syncState: Prisma.DbNull },
    });
    const summary: RunSummary = {
      runId,
      startedAt,
      pages: checkpoint.pagesDone,
      predictions: checkpoint.predictionsSeen,
      daysTouched: checkpoint.daysTouched.length,
    };
    await onComplete?.(tx, summary);
    return summary;
  });
}

/** Drops an unfinished run so the next one starts from the high-water mark again (nothing is lost: windows overlap). */
export async function abandonRun(db: Db, connectionId: string, runId: string): Promise<void> {
  await db.$executeRawUnsafe(
    `UPDATE connections SET sync_state = NULL, updated_at = now() WHERE id = $1::uuid AND sync_state->>'runId' = $2`,
    connectionId,
    runId,
  );
}
