import type { Prisma } from "../generated/prisma/client.js";
import type { Prediction } from "../replicate/schemas.js";

type Tx = Prisma.TransactionClient;

export interface UsageGroup {
  usageDate: string;
  model: string;
  deployment: string;
}

/** UTC calendar day of a timestamp: the day a prediction's usage counts under. */
export function usageDate(createdAt: Date): string {
  return createdAt.toISOString().slice(0, 10);
}

// A prediction only moves forward: starting → processing → (a status added after this was written)
// → a terminal status. A page fetched earlier but written later must not undo a newer state.
const STATUS_ORDER: Record<string, number> = { starting: 0, processing: 1, succeeded: 3, failed: 3, canceled: 3, aborted: 3 };
const UNKNOWN_RANK = 2;
const rank = (status: string) => STATUS_ORDER[status] ?? UNKNOWN_RANK;
const STATUS_RANK = (col: string) =>
  `CASE ${col} ${Object.entries(STATUS_ORDER)
    .map(([s, r]) => `WHEN '${s}' THEN ${r}`)
    .join(" ")} ELSE ${UNKNOWN_RANK} END`;

const UPSERT_LEDGER = `
WITH incoming AS (
  SELECT * FROM unnest($2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::float8[], $13::float8[])
    AS t(prediction_id, usage_date, model, version, deployment, status, source, created_at, started_at, completed_at, predict_time, total_time)
),
previous AS (
  SELECT p.usage_date, p.model, p.deployment
  FROM prediction_records p JOIN incoming i ON p.connection_id = $1::uuid AND p.prediction_id = i.prediction_id
),
written AS (
  INSERT INTO prediction_records AS p (connection_id, prediction_id, usage_date, model, version, deployment, status, source,
                                       created_at, started_at, completed_at, predict_time, total_time, updated_at)
  SELECT $1::uuid, i.*, now() FROM incoming i
  ON CONFLICT (connection_id, prediction_id) DO UPDATE SET
    usage_date = EXCLUDED.usage_date, model = EXCLUDED.model, version = EXCLUDED.version, deployment = EXCLUDED.deployment,
    status = EXCLUDED.status, source = EXCLUDED.source, created_at = EXCLUDED.created_at, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, predict_time = EXCLUDED.predict_time, total_time = EXCLUDED.total_time, updated_at = now()
  WHERE ${STATUS_RANK("EXCLUDED.status")} >= ${STATUS_RANK("p.status")}
  RETURNING p.usage_date, p.model, p.deployment
)
SELECT DISTINCT to_char(usage_date, 'YYYY-MM-DD') AS "usageDate", model, deployment
FROM (SELECT * FROM previous UNION ALL SELECT * FROM written) g`;

/** Dedupes by id (the most advanced state wins), upserts into the ledger, returns every group whose totals may have changed. */
export async function upsertLedger(tx: Tx, connectionId: string, predictions: Prediction[]): Promise<UsageGroup[]> {
  const rows = latestById(predictions);
  if (rows.length === 0) return [];
  const col = <T>(f: (p: Prediction) => T) => rows.map(f);
  return tx.$queryRawUnsafe<UsageGroup[]>(
    UPSERT_LEDGER,
    connectionId,
    col((p) => p.id),
    col((p) => usageDate(p.created_at)),
    col((p) => p.model ?? ""),
    col((p) => p.version),
    col((p) => p.deployment ?? ""),
    col((p) => p.status),
    col((p) => p.source),
    col((p) => p.created_at.toISOString()),
    col((p) => p.started_at?.toISOString() ?? null),
    col((p) => p.completed_at?.toISOString() ?? null),
    col((p) => p.metrics.predictTime),
    col((p) => p.metrics.totalTime),
  );
}

function latestById(predictions: Prediction[]): Prediction[] {
  const byId = new Map<string, Prediction>();
  for (const p of predictions) {
    const seen = byId.get(p.id);
    if (!seen || rank(p.status) >= rank(seen.status)) byId.set(p.id, p);
  }
  return [...byId.values()];
}

const RECOMPUTE_DAILY = `
WITH touched AS (
  SELECT * FROM unnest($3::date[], $4::text[], $5::text[]) AS t(usage_date, model, deployment)
),
totals AS (
  SELECT t.usage_date, t.model, t.deployment,
    count(p.prediction_id)::int AS predictions,
    count(*) FILTER (WHERE p.status = 'succeeded')::int AS succeeded,
    count(*) FILTER (WHERE p.status = 'failed')::int AS failed,
    count(*) FILTER (WHERE p.status = 'canceled')::int AS canceled,
    count(*) FILTER (WHERE p.status = 'aborted')::int AS aborted,
    count(*) FILTER (WHERE p.status IN ('starting', 'processing'))::int AS in_progress,
    count(*) FILTER (WHERE p.status NOT IN ('succeeded', 'failed', 'canceled', 'aborted', 'starting', 'processing'))::int AS other,
    -- Rounded per prediction before summing: numeric sums are exact and order-independent.
    coalesce(sum(round(p.predict_time::numeric, 6)), 0) AS compute_seconds,
    coalesce(sum(round(p.total_time::numeric, 6)), 0) AS total_seconds,
    count(p.predict_time)::int AS metered_predictions
  FROM touched t
  LEFT JOIN prediction_records p
    ON p.connection_id = $1::uuid AND p.usage_date = t.usage_date AND p.model = t.model AND p.deployment = t.deployment
  GROUP BY t.usage_date, t.model, t.deployment
),
emptied AS (
  DELETE FROM daily_usage d USING totals x
  WHERE x.predictions = 0 AND d.connection_id = $1::uuid
    AND d.usage_date = x.usage_date AND d.model = x.model AND d.deployment = x.deployment
)
INSERT INTO daily_usage (connection_id, workspace_id, usage_date, model, deployment, predictions, succeeded, failed, canceled,
                         aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions, updated_at)
SELECT $1::uuid, $2, usage_date, model, deployment, predictions, succeeded, failed, canceled,
       aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions, now()
FROM totals WHERE predictions > 0
ON CONFLICT (connection_id, usage_date, model, deployment) DO UPDATE SET
  predictions = EXCLUDED.predictions, succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, canceled = EXCLUDED.canceled,
  aborted = EXCLUDED.aborted, in_progress = EXCLUDED.in_progress, other = EXCLUDED.other,
  compute_seconds = EXCLUDED.compute_seconds, total_seconds = EXCLUDED.total_seconds,
  metered_predictions = EXCLUDED.metered_predictions, updated_at = now()`;

/** Recomputes DailyUsage for exactly these groups from the ledger (never increments, so replays cannot double count). */
export async function recomputeDailyUsage(tx: Tx, connectionId: string, workspaceId: string, groups: UsageGroup[]): Promise<void> {
  if (groups.length === 0) return;
  await tx.$executeRawUnsafe(
    RECOMPUTE_DAILY,
    connectionId,
    workspaceId,
    groups.map((g) => g.usageDate),
    groups.map((g) => g.model),
    groups.map((g) => g.deployment),
  );
}

/**
 * created_at of the oldest prediction not yet in a terminal status (its final state is still owed).
 * Served by the partial index prediction_records_unfinished_idx.
 */
export async function oldestUnfinished(tx: Tx, connectionId: string): Promise<Date | null> {
  const rows = await tx.$queryRawUnsafe<{ created_at: Date | null }[]>(
    `SELECT min(created_at) AS created_at FROM prediction_records
     WHERE connection_id = $1::uuid AND status NOT IN ('succeeded', 'failed', 'canceled', 'aborted')`,
    connectionId,
  );
  return rows[0]?.created_at ?? null;
}
