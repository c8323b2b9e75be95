import { runPrepared, type Db } from "../db/client.js";
import { TERMINAL_STATUSES, sqlList } from "../domain/prediction-status.js";
import { parseCheckpoint, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";
import { deploymentsFailing } from "./deployments.js";
import { eventParams, insertEventFrom, type NewEvent } from "./events.js";

// A run starts and ends in one fenced statement each (no interactive transaction): the change and its sync_started / sync_completed
// event are written together or not at all, exactly once.

type RunEvent = Omit<NewEvent, "connectionId">;

const READ_RUN = {
  name: "read_run",
  text: `SELECT status, token_ciphertext AS "tokenCiphertext", sync_state AS "syncState", high_water_mark AS "highWaterMark",
    (SELECT min(created_at) FROM prediction_records
     WHERE connection_id = $1::uuid AND status NOT IN (${sqlList(TERMINAL_STATUSES)})) AS "oldestUnfinished",
    EXISTS (SELECT 1 FROM prediction_records WHERE connection_id = $1::uuid AND kind = 'training') AS "trainingsRead",
    -- The one place that decides whether a run reads the deployments (refreshDeployments reads when told).
    CASE WHEN c.deployments_checked_at >= date_trunc('day', $2::timestamptz, 'UTC') THEN ${deploymentsFailing("c.id")} ELSE true END
      AS "deploymentsDue"
  FROM connections c WHERE c.id = $1::uuid`,
};

// Fenced on what was read: still connected, the same (absent or unreadable) checkpoint and the same
// high-water mark, so two ticks never start two runs and a finished run is never planned from stale data.
const START_RUN = {
  name: "start_run",
  text: `WITH started AS (
    UPDATE connections SET sync_state = $2::jsonb, last_sync_started_at = $3::timestamptz, updated_at = now()
    WHERE id = $1::uuid AND status = 'connected' AND sync_state IS NOT DISTINCT FROM $4::jsonb
      AND high_water_mark IS NOT DISTINCT FROM $5::timestamptz
    RETURNING id
  ), event AS (${insertEventFrom("started", 6)})
  SELECT count(*)::int AS n FROM started`,
};

// Every window is done, or still exactly as the caller read it before the pages that close it ($5, by window id).
const COMPLETE_RUN = {
  name: "complete_run",
  text: `WITH completed AS (
    UPDATE connections SET last_synced_at = $3::timestamptz, high_water_mark = $4::timestamptz, sync_state = NULL, updated_at = now()
    WHERE id = $1::uuid AND status = 'connected' AND sync_state->>'runId' = $2
      AND NOT EXISTS (SELECT 1 FROM jsonb_each(sync_state->'windows') e
                      WHERE NOT (e.value->>'done')::boolean AND e.value IS DISTINCT FROM $5::jsonb->e.key)
    RETURNING id, sync_requested_at >= $4::timestamptz AS requested
  ), event AS (${insertEventFrom("completed", 6)})
  SELECT count(*)::int AS n, coalesce(bool_or(requested), false) AS requested FROM completed`,
};

export interface RunStart {
  checkpoint: Checkpoint;
  started: boolean;
  /** The stored token as read (the run's reads need no second look-up). */
  tokenCiphertext: string | null;
  /** The deployments were not read on `now`'s UTC day, or reading them is failing (see refreshDeployments). */
  deploymentsDue: boolean;
}

type PlanInputs = { highWaterMark: Date | null; oldestUnfinished: Date | null; trainingsRead: boolean };
type ReadRunRow = PlanInputs & Omit<RunStart, "checkpoint" | "started"> & { status: string; syncState: unknown };

/**
 * Starts a run, or returns the current one (unfinished, or finished but not yet completed) so a crashed run resumes from its
 * checkpoint; `started` says which. Null when the connection is not connected.
 */
export async function startRun(
  db: Db,
  connectionId: string,
  now: Date,
  plan: (inputs: PlanInputs) => Checkpoint,
  /** Written in the same statement when a new run starts (so "started" is recorded exactly once). */
  event: (checkpoint: Checkpoint) => RunEvent,
): Promise<RunStart | null> {
  for (;;) {
    const [row] = await runPrepared<ReadRunRow>(db, READ_RUN, [connectionId, now]);
    if (row?.status !== "connected") return null;
    const { tokenCiphertext, deploymentsDue } = row;
    const current = parseCheckpoint(row.syncState);
    if (current) return { checkpoint: current, started: false, tokenCiphertext, deploymentsDue };
    // No run, or one saved in a form this version cannot read: start again (windows overlap, nothing is lost).
    const checkpoint = plan(row);
    const [won] = await runPrepared<{ n: number }>(db, START_RUN, [
      connectionId,
      JSON.stringify(checkpoint),
      checkpoint.startedAt,
      row.syncState === null ? null : JSON.stringify(row.syncState),
      row.highWaterMark,
      ...eventParams(event(checkpoint)),
    ]);
    if (won?.n === 1) return { checkpoint, started: true, tokenCiphertext, deploymentsDue };
    // Another tick started it (or the connection changed) meanwhile: read again.
  }
}

/**
 * Closes a finished run: lastSyncedAt becomes the run's start and the next window starts from its end, with its event, in one
 * statement; `requested` when a syncNow came at or after the run's window ended (a run must follow). Null (and nothing written)
 * when that run is not the connection's current, finished run (another worker completed it, or the connection changed).
 * `closing`: windows `checkpoint` has done that are stored open, as stored (pages that only closed them were read, not written);
 * the run is finished if they are still stored so.
 */
export async function completeRun(
  db: Db,
  connectionId: string,
  checkpoint: Checkpoint,
  event: RunEvent,
  closing: Record<string, SyncWindow> = {},
): Promise<{ requested: boolean } | null> {
  const { runId, startedAt, windowEnd } = checkpoint;
  const params = [connectionId, runId, startedAt, windowEnd, JSON.stringify(closing), ...eventParams(event)];
  const [done] = await runPrepared<{ n: number; requested: boolean }>(db, COMPLETE_RUN, params);
  return done?.n === 1 ? { requested: done.requested } : null;
}

const RUN_STARTER = {
  name: "run_starter",
  text: `SELECT job_id AS "jobId" FROM integration_events
    WHERE connection_id = $1::uuid AND kind = 'sync_started' AND detail->>'runId' = $2 ORDER BY occurred_at DESC, id DESC LIMIT 1`,
};

/** The job that started the run (its sync_started event names it), or null. */
export async function runStarter(db: Db, connectionId: string, runId: string): Promise<string | null> {
  const [row] = await runPrepared<{ jobId: string | null }>(db, RUN_STARTER, [connectionId, runId]);
  return row?.jobId ?? null;
}

/** Drops the connection's run so the next one starts from the high-water mark again (nothing is lost: windows overlap). */
export async function abandonRun(db: Db, connectionId: string): Promise<void> {
  await db.pool.query(`UPDATE connections SET sync_state = NULL, updated_at = now() WHERE id = $1::uuid AND sync_state IS NOT NULL`, [
    connectionId,
  ]);
}

/** Connected connections whose run has written nothing for `idleMs` (see reconcile: its jobs may be lost). */
export async function idleRuns(db: Db, idleMs: number): Promise<string[]> {
  const { rows } = await db.pool.query<{ id: string }>(
    `SELECT id FROM connections WHERE status = 'connected' AND sync_state IS NOT NULL AND updated_at < now() - $1::int * interval '1 ms'`,
    [idleMs],
  );
  return rows.map((r) => r.id);
}
