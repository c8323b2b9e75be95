import type pg from "pg";

export interface UsageSeed {
  workspaceId: string;
  connections: number;
  /** The UTC days [from, to] every connection gets `rowsPerDay` usage rows (one per model), and its deployment lives. */
  from: string;
  to: string;
  rowsPerDay?: number;
  /** Each connection gets one dedicated deployment (1 minimum instance of gpu-t4) listed over the days. */
  deployments?: boolean;
  /** Each connection has finished a run that read the days, so fillZeros fills them. */
  covered?: boolean;
}

/**
 * Load for the usage query without syncing anything: connected connections of one workspace with
 * their usage, deployments and coverage written in a few SQL statements (a million rows take
 * seconds). Returns the connection ids.
 */
export async function seedUsage(pool: pg.Pool, s: UsageSeed): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO connections (id, workspace_id, status, last_synced_at, high_water_mark, updated_at)
     SELECT gen_random_uuid(), $1, 'connected', CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN ($4::date + 1)::timestamptz END, now()
     FROM generate_series(1, $2) RETURNING id`,
    [s.workspaceId, s.connections, s.covered ?? false, s.to],
  );
  const ids = rows.map((r) => r.id);
  const days = `unnest($1::uuid[]) AS c(id) CROSS JOIN generate_series($2::date, $3::date, interval '1 day') AS g(day)`;
  if (s.rowsPerDay) {
    // One quarter hour a day (noon UTC) per model.
    await pool.query(
      `INSERT INTO usage_buckets (connection_id, workspace_id, bucket_start, model, deployment, source, predictions, succeeded, failed,
                                 canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions,
                                 billable_seconds, input_tokens, output_tokens)
       SELECT c.id, $4, (g.day + interval '12 hours') AT TIME ZONE 'UTC', 'seed/model-' || m, '', 'api', 4, 1, 1, 1, 1, 0, 0, 10.5, 11, 4, 7.5, 100, 20
       FROM ${days} CROSS JOIN generate_series(1, $5) AS m`,
      [ids, s.from, s.to, s.workspaceId, s.rowsPerDay],
    );
  }
  if (s.deployments) {
    await pool.query(
      `INSERT INTO deployments (connection_id, name, release_number, model, version, hardware, min_instances, max_instances, effective_from, last_seen_on)
       SELECT id, 'seed/dedicated', 1, 'seed/model-1', 'v1', 'gpu-t4', 1, 2, $2::date, $3::date FROM unnest($1::uuid[]) AS c(id)`,
      [ids, s.from, s.to],
    );
  }
  if (s.covered) {
    // What coverage reads: the first finished run and the window its sync_started event names.
    await pool.query(
      `INSERT INTO integration_events (connection_id, occurred_at, kind, level, message, detail)
       SELECT id, now() - e.lag, e.kind::"EventKind", 'info', 'seeded', jsonb_build_object('runId', 'seed', 'windowStart', $2::date::timestamptz)
       FROM unnest($1::uuid[]) AS c(id)
       CROSS JOIN (VALUES ('sync_started', interval '1 minute'), ('sync_completed', interval '0')) AS e(kind, lag)`,
      [ids, s.from],
    );
  }
  return ids;
}
