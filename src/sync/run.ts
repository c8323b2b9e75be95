import type { Db } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { PredictionPage } from "../replicate/schemas.js";
import { startRun } from "../repositories/runs.js";
import { tokenFingerprint } from "../vault.js";
import { newCheckpoint, type Checkpoint } from "./checkpoint.js";
import { applyPage, type PageOutcome } from "./engine.js";
import { PagePrefetcher } from "./prefetch.js";

export interface RunSettings {
  backfillDays: number;
  lookbackHours: number;
}

/** Starts a run over the window the settings give, or returns the current one; null unless connected. */
export function beginRun(
  db: Db,
  connectionId: string,
  settings: RunSettings,
  now = new Date(),
  onStart?: (tx: Prisma.TransactionClient, checkpoint: Checkpoint) => Promise<void>,
): Promise<Checkpoint | null> {
  return startRun(
    db,
    connectionId,
    (connection, oldestUnfinished) => newCheckpoint({ now, highWaterMark: connection.high_water_mark, oldestUnfinished, ...settings }),
    onStart,
  );
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
