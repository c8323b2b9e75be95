import { runPrepared, type Db } from "../db/client.js";
import { TERMINAL_STATUSES, sqlList, sqlStatusRank, statusRank } from "../domain/prediction-status.js";
import { BUCKET_MINUTES, STORED, quarterHourOf, type UsageKind } from "../domain/usage-measures.js";
import type { PlannedWrite } from "../domain/checkpoint.js";
import type { Prediction } from "../replicate/schemas.js";

const TERMINAL = sqlList(TERMINAL_STATUSES);

const USAGE_SUMS = STORED.map((m) => m.column);
/** usage_buckets' key besides the connection (and the workspace, which follows from it). */
const USAGE_KEY = ["bucket_start", "bucket_minutes", "kind", "model", "deployment", "source"];

/**
 * What the write takes: a prediction, or a training with `kind: "training"` (the same metadata, read
 * from GET /v1/trainings). Without a kind it is a prediction. Ids are unique within a kind only.
 */
export type UsageRecord = Prediction & { kind?: UsageKind };
const kindOf = (r: UsageRecord): UsageKind => r.kind ?? "prediction";

/** The usage sums over `rows` (ledger rows, each with a `sign` of 1 or -1), one row per usage key (quarter hour, kind, model, deployment, source). */
export const usageDeltas = (rows: string) => `
  SELECT ${quarterHourOf("created_at")} AS bucket_start, ${BUCKET_MINUTES} AS bucket_minutes, kind, model, deployment,
    coalesce(source, '') AS source,
    ${STORED.map((m) => `${m.delta} AS ${m.column}`).join(",\n    ")}
  FROM ${rows} GROUP BY 1, kind, model, deployment, coalesce(source, '')`;

/** Adds `rows` (a usage key and each stored measure) to the usage rows of `connection` in `workspace`. */
export const addToUsage = (connection: string, workspace: string, rows: string) => `
  INSERT INTO usage_buckets AS d (connection_id, workspace_id, ${USAGE_KEY.join(", ")}, ${USAGE_SUMS.join(", ")}, updated_at)
  SELECT ${connection}, ${workspace}, ${USAGE_KEY.join(", ")}, ${USAGE_SUMS.join(", ")}, now() FROM ${rows}
  ON CONFLICT (connection_id, ${USAGE_KEY.join(", ")}) DO UPDATE SET
    ${USAGE_SUMS.map((c) => `${c} = d.${c} + EXCLUDED.${c}`).join(", ")}, updated_at = now()`;

/**
 * The ledger columns the page write takes from each record, in the order of its `unnest` parameters
 * ($9 on): the key, then what a newer read replaces. Each with its SQL type and how a record gives it.
 */
const RECORD: { column: string; type: string; read: (r: UsageRecord) => unknown }[] = [
  { column: "prediction_id", type: "text", read: (r) => r.id },
  { column: "kind", type: '"UsageKind"', read: kindOf },
  { column: "model", type: "text", read: (r) => r.model ?? "" },
  { column: "version", type: "text", read: (r) => r.version },
  { column: "deployment", type: "text", read: (r) => r.deployment ?? "" },
  { column: "status", type: "text", read: (r) => r.status },
  { column: "source", type: "text", read: (r) => r.source },
  { column: "created_at", type: "timestamptz", read: (r) => r.created_at.toISOString() },
  { column: "started_at", type: "timestamptz", read: (r) => r.started_at?.toISOString() ?? null },
  { column: "completed_at", type: "timestamptz", read: (r) => r.completed_at?.toISOString() ?? null },
  { column: "predict_time", type: "float8", read: (r) => r.metrics.predictTime },
  { column: "total_time", type: "float8", read: (r) => r.metrics.totalTime },
  { column: "input_tokens", type: "bigint", read: (r) => r.metrics.inputTokens },
  { column: "output_tokens", type: "bigint", read: (r) => r.metrics.outputTokens },
  { column: "data_removed", type: "boolean", read: (r) => r.data_removed },
];
const RECORD_COLUMNS = RECORD.map((c) => c.column);
/** The write's parameters after the records': the split's open-window bound, then the page's trainings. */
const [SPLIT_PARAM, TRAININGS_PARAM] = [9 + RECORD.length, 10 + RECORD.length];
/** The ledger columns a newer read of a record replaces: all but the key. */
const REPLACED = RECORD_COLUMNS.slice(2);

/** What a ledger row adds to usage: its usage key and what the measures read. */
const LEDGER_STATE = [
  "kind",
  "prediction_id",
  "created_at",
  "model",
  "deployment",
  "source",
  "status",
  "predict_time",
  "total_time",
  "input_tokens",
  "output_tokens",
];

/**
 * One prepared statement, one round trip, atomic on its own: writes the pages read from one window
 * only if the connection is still connected and that window is still where the pages continue
 * (compare-and-set under the row lock, so a disconnect or a second worker with the same pages makes
 * it write nothing). It upserts the pages into the ledger and moves usage (UTC quarter hours) by exactly what changed: each written row adds its
 * new state and subtracts the state it replaced. A row read again as stored is not written (runs read
 * their lookback again each time), nor is one the status guard keeps out: neither adds nor subtracts,
 * and the usage rows of what was read are refreshed all the same. The cost is the
 * page's size, never the size of its day. Each record carries its kind: a prediction and a training
 * are different ledger rows whatever their ids.
 *
 * `previous` reads the statement's snapshot, taken before the row lock is granted. That is safe
 * because only one writer can pass the compare-and-set for a window (any writer of the same window
 * that held the lock first changed it, so a waiting one writes nothing), and windows are disjoint in
 * created_at, so writers of other windows never touch the same predictions.
 */
const WRITE_PAGES = `
WITH conn AS (
  SELECT id, workspace_id, sync_state FROM connections
  WHERE id = $1::uuid AND status = 'connected' AND sync_state->>'runId' = $2 AND sync_state->'windows'->$3 = $4::jsonb
    -- A split is planned for the time windows open when the pages were read: more open now means another
    -- window split meanwhile, and splitting too would open more than the parallelism (the trainings
    -- window is never split and not counted).
    AND ($${SPLIT_PARAM}::int IS NULL OR (SELECT count(*) FROM jsonb_each(sync_state->'windows') e
                              WHERE NOT (e.value->>'done')::boolean AND e.value->>'kind' IS DISTINCT FROM 'training') <= $${SPLIT_PARAM})
  FOR UPDATE
),
incoming AS (
  SELECT * FROM unnest(${RECORD.map((c, i) => `$${9 + i}::${c.type}[]`).join(", ")}) AS t(${RECORD_COLUMNS.join(", ")})
  WHERE EXISTS (SELECT 1 FROM conn)
),
written AS (
  INSERT INTO prediction_records AS p (connection_id, ${RECORD_COLUMNS.join(", ")}, updated_at)
  SELECT $1::uuid, i.*, now() FROM incoming i
  ON CONFLICT (connection_id, kind, prediction_id) DO UPDATE SET
    ${REPLACED.map((c) => `${c} = EXCLUDED.${c}`).join(", ")}, updated_at = now()
  WHERE ${sqlStatusRank("EXCLUDED.status")} >= ${sqlStatusRank("p.status")}
    -- Read again as stored (every run reads its lookback again): nothing to write, nothing to count.
    AND (${REPLACED.map((c) => `p.${c}`).join(", ")}) IS DISTINCT FROM (${REPLACED.map((c) => `EXCLUDED.${c}`).join(", ")})
  -- xmax is 0 on a row this statement inserted; an updated row carries the lock the upsert took on it.
  RETURNING ${LEDGER_STATE.map((c) => `p.${c}`).join(", ")}, p.xmax <> 0 AS updated
),
previous AS (
  -- The state each updated row replaced: read in the statement's snapshot, which the upsert does not
  -- change. One primary-key lookup per updated row only: a row that was inserted replaced nothing (LIMIT
  -- 1 keeps the planner from turning this into a join that scans every row of the connection when its
  -- statistics are stale).
  SELECT p.* FROM written w CROSS JOIN LATERAL (
    SELECT ${LEDGER_STATE.map((c) => `p.${c}`).join(", ")}
    FROM prediction_records p WHERE p.connection_id = $1::uuid AND p.kind = w.kind AND p.prediction_id = w.prediction_id LIMIT 1
  ) p
  WHERE w.updated
),
changes AS (
  SELECT ${LEDGER_STATE.join(", ")}, 1 AS sign FROM written
  UNION ALL
  SELECT *, -1 FROM previous
  UNION ALL
  -- A record read but not written adds nothing; its usage row is refreshed all the same (refreshedAt is when it was last read).
  SELECT ${LEDGER_STATE.join(", ")}, 0 FROM incoming i
  WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.kind = i.kind AND w.prediction_id = i.prediction_id)
),
deltas AS (${usageDeltas("changes")}),
applied AS (
  -- A group only read again is refreshed where it is counted; no row is made for it (a record the status guard kept
  -- out may name a group nothing is counted in).
  ${addToUsage(
    "$1::uuid",
    "conn.workspace_id",
    `deltas d CROSS JOIN conn WHERE ${USAGE_SUMS.map((c) => `d.${c} <> 0`).join(" OR ")} OR EXISTS (
      -- LIMIT 1: a primary-key probe per group, never a hash of the connection's every row under a stale plan.
      SELECT 1 FROM usage_buckets u WHERE u.connection_id = $1::uuid AND ${USAGE_KEY.map((k) => `u.${k} = d.${k}`).join(" AND ")}
        AND u.predictions <> 0 LIMIT 1)`,
  )}
),
windows AS (
  SELECT (conn.sync_state->'windows') || $5::jsonb AS w FROM conn
),
advanced AS (
  -- Totals are added here, not carried in from the caller: windows written concurrently all count.
  UPDATE connections c SET updated_at = now(), sync_state = conn.sync_state || jsonb_build_object(
    'windows', windows.w,
    'pagesDone', (conn.sync_state->>'pagesDone')::int + $6::int,
    'predictionsSeen', (conn.sync_state->>'predictionsSeen')::int + $7::int,
    'trainingsSeen', coalesce((conn.sync_state->>'trainingsSeen')::int, 0) + $${TRAININGS_PARAM}::int,
    -- A page's days are nearly always there already: the sorted union is built only when one is new.
    'daysTouched', CASE WHEN conn.sync_state->'daysTouched' @> to_jsonb($8::text[]) THEN conn.sync_state->'daysTouched' ELSE
                     (SELECT coalesce(jsonb_agg(d ORDER BY d), '[]'::jsonb)
                      FROM (SELECT jsonb_array_elements_text(conn.sync_state->'daysTouched') UNION SELECT unnest($8::text[])) t(d)) END,
    'done', NOT EXISTS (SELECT 1 FROM jsonb_each(windows.w) e WHERE NOT (e.value->>'done')::boolean))
  FROM conn, windows WHERE c.id = conn.id
  RETURNING c.sync_state
)
-- applied is not read (a data-modifying CTE runs all the same): only a group whose count went down can
-- have been emptied, and the page's deltas name those, nearly always none.
SELECT (SELECT sync_state FROM advanced) AS "syncState",
       coalesce(array_agg(bucket_start), '{}') AS "emptyBuckets",
       coalesce(array_agg(kind::text), '{}') AS "emptyKinds",
       coalesce(array_agg(model), '{}') AS "emptyModels",
       coalesce(array_agg(deployment), '{}') AS "emptyDeployments",
       coalesce(array_agg(source), '{}') AS "emptySources"
FROM deltas WHERE predictions < 0`;

const DELETE_EMPTY = `
DELETE FROM usage_buckets d
USING unnest($2::timestamptz[], $3::"UsageKind"[], $4::text[], $5::text[], $6::text[]) AS e(bucket_start, kind, model, deployment, source)
WHERE d.connection_id = $1::uuid AND d.bucket_start = e.bucket_start AND d.bucket_minutes = ${BUCKET_MINUTES} AND d.kind = e.kind
  AND d.model = e.model AND d.deployment = e.deployment AND d.source = e.source AND d.predictions = 0`;

const WRITE = { name: "write_pages", text: WRITE_PAGES };
const PRUNE_EMPTY = { name: "delete_empty_usage", text: DELETE_EMPTY };

/**
 * Writes pages (deduped by kind and id, the most advanced state winning) into the ledger and usage and
 * stores their window, all or nothing. Returns the checkpoint after the write, or null when the
 * fence did not hold (nothing was written).
 */
export async function writePages(db: Db, connectionId: string, write: PlannedWrite<UsageRecord>): Promise<unknown> {
  const rows = latestById(write.predictions);
  const trainings = rows.filter((r) => kindOf(r) === "training").length;
  const [result] = await runPrepared<{
    syncState: unknown;
    emptyBuckets: Date[];
    emptyKinds: string[];
    emptyModels: string[];
    emptyDeployments: string[];
    emptySources: string[];
  }>(db, WRITE, [
    connectionId,
    write.runId,
    write.windowId,
    JSON.stringify(write.expected),
    JSON.stringify(write.windows),
    // The trainings window counts its own pages: the run's pagesDone stays the pages of predictions.
    write.expected.kind === "training" ? 0 : write.pages,
    rows.length - trainings,
    write.days,
    ...ledgerColumns(rows),
    write.splitFor,
    trainings,
  ]);
  // An aggregate without GROUP BY: always one row.
  const { syncState, ...empty } = result!;
  // A group whose count went down may be empty (its last prediction moved to another day/model): the
  // statement that emptied it cannot also delete it, so this deletes those left at zero. Should this
  // step be lost, the row left behind holds zeros, so totals stay right.
  if (empty.emptyBuckets.length > 0) {
    await runPrepared(db, PRUNE_EMPTY, [
      connectionId,
      empty.emptyBuckets,
      empty.emptyKinds,
      empty.emptyModels,
      empty.emptyDeployments,
      empty.emptySources,
    ]);
  }
  return syncState;
}

/** The ledger columns of `rows`, one array each, in the order the write statement's `unnest` takes them. */
export function ledgerColumns(rows: UsageRecord[]): unknown[][] {
  return RECORD.map((c) => rows.map(c.read));
}

function latestById(records: UsageRecord[]): UsageRecord[] {
  const byId = new Map<string, UsageRecord>();
  for (const p of records) {
    const key = `${kindOf(p)}:${p.id}`;
    const seen = byId.get(key);
    if (!seen || statusRank(p.status) >= statusRank(seen.status)) byId.set(key, p);
  }
  return [...byId.values()];
}

// Per batch, so a large prune never holds locks or bloats one transaction for long.
const PRUNE_LEDGER = {
  name: "prune_ledger",
  text: `DELETE FROM prediction_records WHERE ctid IN (
    SELECT p.ctid FROM prediction_records p JOIN connections c ON c.id = p.connection_id
    WHERE p.created_at < $1::timestamptz AND p.status IN (${TERMINAL})
      -- A run in progress may reach further back than the cutoff (it started before the last prune).
      AND p.created_at < coalesce((c.sync_state->>'windowStart')::timestamptz, $1::timestamptz)
    LIMIT $2::int)`,
};

/**
 * Deletes ledger rows no run can read again: terminal predictions created before `cutoff` (and
 * before the window of any run in progress). Usage is not touched, so no total changes; a run
 * never reaches back past BACKFILL_DAYS, so a pruned prediction is never read (and counted) again.
 */
export async function pruneLedger(db: Db, cutoff: Date, batch = 10_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const result = await db.pool.query({ ...PRUNE_LEDGER, values: [cutoff.toISOString(), batch] });
    deleted += result.rowCount ?? 0;
    if ((result.rowCount ?? 0) < batch) return deleted;
  }
}
