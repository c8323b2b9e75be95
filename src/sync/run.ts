import type { Db } from "../db/client.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { PredictionPage } from "../replicate/schemas.js";
import { Prisma } from "../generated/prisma/client.js";
import { lockConnectionForSync } from "../repositories/connections.js";
import { oldestUnfinished } from "../repositories/usage.js";
import { newCheckpoint, parseCheckpoint, type Checkpoint } from "./checkpoint.js";
import { applyPage, type PageOutcome } from "./engine.js";
import { PagePrefetcher } from "./prefetch.js";
import { tokenFingerprint } from "../vault.js";

export interface RunSettings {
  backfillDays: number;
  lookbackHours: number;
}

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
export async function beginRun(
  db: Db,
  connectionId: string,
  settings: RunSettings,
  now = new Date(),
  /** Runs in the same transaction when a new run starts (so "started" is recorded exactly once). */
  onStart?: (tx: Prisma.TransactionClient, checkpoint: Checkpoint) => Promise<void>,
): Promise<Checkpoint | null> {
  return db.$transaction(async (tx) => {
    const connection = await lockConnectionForSync(tx, connectionId);
    if (!connection || connection.status !== "connected") return null;
    const current = parseCheckpoint(connection.sync_state);
    if (current) return current;
    const checkpoint = newCheckpoint({
      now,
      highWaterMark: connection.high_water_mark,
      oldestUnfinished: await oldestUnfinished(tx, connectionId),
      ...settings,
    });
    await tx.connection.update({ where: { id: connectionId }, data: { syncState: checkpoint, lastSyncStartedAt: now } });
    await onStart?.(tx, checkpoint);
    return checkpoint;
  });
}

/** Fetches the page after the checkpoint: the filtered first page, then the `next` links. */
export function fetchNextPage(
  client: ReplicateClient,
  token: string,
  checkpoint: Checkpoint,
  connectionId?: string,
): Promise<PredictionPage> {
  return client.listPredictions(token, {
    connectionId,
    cursorUrl: checkpoint.nextUrl,
    createdAfter: new Date(checkpoint.windowStart),
    createdBefore: new Date(checkpoint.windowEnd),
  });
}

/**
 * Fetches and writes the page after the checkpoint. With a prefetcher, a response fetched ahead is
 * used, and the following pages are requested before this one is written.
 */
export async function syncPage(
  db: Db,
  client: ReplicateClient,
  token: string,
  checkpoint: Checkpoint,
  connectionId: string,
  prefetcher?: PagePrefetcher,
): Promise<PageOutcome> {
  // A response fetched with a token that has since been replaced is never reused.
  const scope = `${connectionId}|${tokenFingerprint(token)}`;
  const page = await (prefetcher?.take(PagePrefetcher.key(scope, checkpoint)) ?? fetchNextPage(client, token, checkpoint, connectionId));
  prefetcher?.ahead(scope, { ...checkpoint, pagesDone: checkpoint.pagesDone + 1, nextUrl: page.next }, (at) =>
    fetchNextPage(client, token, at, connectionId),
  );
  return applyPage(db, { connectionId, checkpoint, predictions: page.results, rejected: page.rejected, next: page.next });
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
  onComplete?: (tx: Prisma.TransactionClient, summary: RunSummary) => Promise<void>,
): Promise<RunSummary | null> {
  return db.$transaction(async (tx) => {
    const connection = await lockConnectionForSync(tx, connectionId);
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
