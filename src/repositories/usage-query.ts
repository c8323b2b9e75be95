import type { Db } from "../db/client.js";

export const GROUP_BY = ["date", "connection", "model", "deployment", "status"] as const;
export type GroupBy = (typeof GROUP_BY)[number];

export interface UsageQuery {
  workspaceId?: string;
  connectionId?: string;
  from: string;
  to: string;
  groupBy: GroupBy[];
}

export interface UsageResultRow {
  date?: string;
  connectionId?: string;
  model?: string;
  deployment?: string;
  status?: string;
  predictions: number;
  succeeded?: number;
  failed?: number;
  canceled?: number;
  aborted?: number;
  inProgress?: number;
  other?: number;
  computeSeconds?: number;
  meteredPredictions?: number;
}

const COLUMN: Record<Exclude<GroupBy, "status">, string> = {
  date: `to_char(d.usage_date, 'YYYY-MM-DD') AS "date"`,
  connection: `d.connection_id::text AS "connectionId"`,
  model: `d.model AS "model"`,
  deployment: `d.deployment AS "deployment"`,
};

// Grouping by status turns each row's status counts into one row per status. Compute seconds are
// not kept per status, so status-grouped rows carry counts only.
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ('succeeded', d.succeeded), ('failed', d.failed), ('canceled', d.canceled),
  ('aborted', d.aborted), ('in_progress', d.in_progress), ('other', d.other)) AS s(status, n)`;

/** Dashboard query over DailyUsage; inclusive date range, grouped by any of date/connection/model/deployment/status. */
export async function queryUsage(db: Db, q: UsageQuery): Promise<UsageResultRow[]> {
  const byStatus = q.groupBy.includes("status");
  const dims = q.groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");
  const select = dims.map((g) => COLUMN[g]);
  const groupCols = dims.map((_, i) => String(i + 1));
  if (byStatus) {
    select.push(`s.status AS "status"`);
    groupCols.push(String(select.length));
  }
  const measures = byStatus
    ? [`sum(s.n)::int AS "predictions"`]
    : [
        `sum(d.predictions)::int AS "predictions"`,
        `sum(d.succeeded)::int AS "succeeded"`,
        `sum(d.failed)::int AS "failed"`,
        `sum(d.canceled)::int AS "canceled"`,
        `sum(d.aborted)::int AS "aborted"`,
        `sum(d.in_progress)::int AS "inProgress"`,
        `sum(d.other)::int AS "other"`,
        `sum(d.compute_seconds)::float8 AS "computeSeconds"`,
        `sum(d.metered_predictions)::int AS "meteredPredictions"`,
      ];
  const params: unknown[] = [q.from, q.to];
  const filters = [`d.usage_date BETWEEN $1::date AND $2::date`];
  if (q.connectionId) filters.push(`d.connection_id = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`d.workspace_id = $${params.push(q.workspaceId)}`);
  const sql = `SELECT ${[...select, ...measures].join(", ")}
    FROM daily_usage d ${byStatus ? STATUS_UNPIVOT : ""}
    WHERE ${filters.join(" AND ")}${byStatus ? " AND s.n > 0" : ""}
    ${groupCols.length ? `GROUP BY ${groupCols.join(", ")} ORDER BY ${groupCols.join(", ")}` : ""}`;
  const rows = await db.$queryRawUnsafe<UsageResultRow[]>(sql, ...params);
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return rows.filter((r) => r.predictions !== null);
}
