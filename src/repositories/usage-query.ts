import type { Db } from "../db/client.js";
import {
  DIMENSION_FIELD,
  STATUS_COUNTS,
  basisOf,
  measureSelect,
  money,
  zeroMeasures,
  type GroupBy,
  type UsageRow,
} from "../domain/usage-measures.js";
import { hardwarePriceAt, modelPriceAt, modelSkuAt } from "./prices.js";

export { GROUP_BY, type GroupBy } from "../domain/usage-measures.js";

export interface UsageQuery {
  workspaceId?: string;
  connectionId?: string;
  from: string;
  to: string;
  groupBy: GroupBy[];
}

/** Dedicated hardware bills while idle: min_instances × SKU price × 86 400 s for each day a deployment existed. */
export interface IdleFloorRow {
  line: "idle_floor";
  date?: string;
  connectionId?: string;
  model?: string;
  deployment?: string;
  instanceSeconds: number;
  estimatedCostUsd: string;
  costBasis: string;
}

const COLUMN: Record<Exclude<GroupBy, "status">, string> = {
  date: "to_char(d.usage_date, 'YYYY-MM-DD')",
  connection: "d.connection_id::text",
  model: "d.model",
  deployment: "d.deployment",
  source: "d.source",
};
const dimension = (g: GroupBy, sql: string) => `${sql} AS "${DIMENSION_FIELD[g]}"`;

// Grouping by status turns each row's status counts into one row per status.
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ${STATUS_COUNTS.map((m) => `('${m.status}', d.${m.column})`).join(", ")}) AS s(status, n)`;

// Each daily row is priced at query time by the price book in force on its day, so a price change
// recomputes history exactly. A deployment bills its hardware; otherwise a model's token prices,
// then its per-output price, then the hardware an operator mapped it to; else it is unpriced.
// billable_seconds and the token sums exclude aborted predictions, which Replicate does not bill.
const PRICED = `
  CROSS JOIN LATERAL (SELECT (SELECT x.hardware FROM deployments x WHERE x.connection_id = d.connection_id AND x.name = d.deployment
                              AND x.effective_from <= d.usage_date ORDER BY x.effective_from DESC, x.release_number DESC LIMIT 1) AS dep_sku) dep
  CROSS JOIN LATERAL (SELECT coalesce(dep.dep_sku, ${modelSkuAt("d.model", "d.usage_date")}) AS sku,
                             ${modelPriceAt("d.model", "input_token", "d.usage_date")} AS in_price,
                             ${modelPriceAt("d.model", "output_token", "d.usage_date")} AS out_price,
                             ${modelPriceAt("d.model", "prediction", "d.usage_date")} AS pred_price) p
  CROSS JOIN LATERAL (SELECT ${hardwarePriceAt("p.sku", "d.usage_date")} AS sku_price) hw
  CROSS JOIN LATERAL (SELECT CASE
      WHEN dep.dep_sku IS NOT NULL THEN CASE WHEN hw.sku_price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END
      WHEN p.in_price IS NOT NULL OR p.out_price IS NOT NULL THEN 'tokens'
      WHEN p.pred_price IS NOT NULL THEN 'outputs'
      WHEN hw.sku_price IS NOT NULL THEN 'hardware_seconds'
      ELSE 'unpriced' END AS basis) b
  CROSS JOIN LATERAL (SELECT CASE b.basis
      WHEN 'hardware_seconds' THEN d.billable_seconds * hw.sku_price
      WHEN 'tokens' THEN d.input_tokens * coalesce(p.in_price, 0) + d.output_tokens * coalesce(p.out_price, 0)
      WHEN 'outputs' THEN d.succeeded * p.pred_price
      ELSE 0 END AS cost) c`;

/** The WHERE clause and parameters every usage query shares: date range plus connection or workspace. */
function scope(q: UsageQuery, date: string, connection: string, workspace: string): { where: string; params: unknown[] } {
  const params: unknown[] = [q.from, q.to];
  const filters = [`${date} BETWEEN $1::date AND $2::date`];
  if (q.connectionId) filters.push(`${connection} = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`${workspace} = $${params.push(q.workspaceId)}`);
  return { where: filters.join(" AND "), params };
}

const grouping = (cols: string[]) => (cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : "");

/** Dashboard query over DailyUsage; inclusive date range, grouped by any of date/connection/model/deployment/source/status. */
export async function queryUsage(db: Db, q: UsageQuery): Promise<UsageRow[]> {
  const byStatus = q.groupBy.includes("status");
  const dims = q.groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");
  const select = dims.map((g) => dimension(g, COLUMN[g]));
  const groupCols = dims.map((_, i) => String(i + 1));
  if (byStatus) {
    select.push(dimension("status", "s.status"));
    groupCols.push(String(select.length));
  }
  const { where, params } = scope(q, "d.usage_date", "d.connection_id", "d.workspace_id");
  const sql = `SELECT ${[...select, ...measureSelect(byStatus)].join(", ")}
    FROM daily_usage d ${byStatus ? STATUS_UNPIVOT : PRICED}
    WHERE ${where}${byStatus ? " AND s.n > 0" : ""}
    ${grouping(groupCols)}`;
  const rows = await db.$queryRawUnsafe<UsageRow[]>(sql, ...params);
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return rows.filter((r) => r.predictions !== null);
}

const IDLE_COLUMN: Record<Exclude<GroupBy, "status" | "source">, string> = {
  date: "to_char(i.day, 'YYYY-MM-DD')",
  connection: "i.connection_id::text",
  model: "i.model",
  deployment: "i.name",
};

/**
 * The idle floor of deployments in scope, grouped like the usage rows (by date, connection, model,
 * deployment; not by source or status, which idle time has none of). A release's configuration
 * applies from the day it was created until the deployment was last listed.
 */
export async function queryIdleFloor(db: Db, q: UsageQuery): Promise<IdleFloorRow[]> {
  if (q.groupBy.includes("status")) return [];
  const dims = q.groupBy.filter((g): g is keyof typeof IDLE_COLUMN => g in IDLE_COLUMN);
  const { where, params } = scope(q, "g.day", "cn.id", "cn.workspace_id");
  const sql = `SELECT ${[`'idle_floor' AS "line"`, ...dims.map((g) => dimension(g, IDLE_COLUMN[g]))].join(", ")},
      sum(i.min_instances * 86400)::float8 AS "instanceSeconds",
      ${money("sum(i.min_instances * 86400 * i.price)")} AS "estimatedCostUsd",
      ${basisOf("CASE WHEN i.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END")} AS "costBasis"
    FROM (
      SELECT g.day::date AS day, cn.id AS connection_id, x.name, x.model, x.min_instances, ${hardwarePriceAt("x.hardware", "g.day::date")} AS price
      FROM connections cn
      CROSS JOIN generate_series($1::date, $2::date, interval '1 day') AS g(day)
      CROSS JOIN LATERAL (
        SELECT DISTINCT ON (x.name) x.name, x.model, x.hardware, x.min_instances FROM deployments x
        WHERE x.connection_id = cn.id AND x.effective_from <= g.day::date AND g.day::date <= x.last_seen_on
        ORDER BY x.name, x.effective_from DESC, x.release_number DESC
      ) x
      WHERE ${where} AND x.min_instances > 0
    ) i
    ${grouping(dims.map((_, i) => String(i + 2)))}`;
  const rows = await db.$queryRawUnsafe<IdleFloorRow[]>(sql, ...params);
  return rows.filter((r) => r.instanceSeconds !== null);
}

const valueOf = (r: UsageRow, g: GroupBy) => ((r as Record<string, unknown>)[DIMENSION_FIELD[g]] as string | null | undefined) ?? null;

/**
 * Adds a zero row for each day in `days` that has no row: per connection (key = connection id) with
 * `connection` grouping, else under the key "". A zero row's other dimensions are null, and it is
 * merged in where the query's order puts it (nulls first), the query's rows keeping their order.
 */
export function fillZeroDays(rows: UsageRow[], groupBy: GroupBy[], days: Map<string, string[]>): UsageRow[] {
  const byConnection = groupBy.includes("connection");
  const seen = new Set(rows.map((r) => `${byConnection ? r.connectionId : ""}|${r.date}`));
  const zero = zeroMeasures(groupBy.includes("status"));
  const zeros: UsageRow[] = [];
  for (const [connectionId, list] of days) {
    for (const date of list.filter((d) => !seen.has(`${connectionId}|${d}`))) {
      const dims = Object.fromEntries(groupBy.map((g) => [DIMENSION_FIELD[g], null]));
      zeros.push({ ...dims, date, ...(byConnection ? { connectionId } : {}), ...zero } as UsageRow);
    }
  }
  // Only dates, connection ids and nulls are compared here: the same order in any collation.
  const compare = (a: UsageRow, b: UsageRow) => {
    for (const g of groupBy) {
      const [x, y] = [valueOf(a, g), valueOf(b, g)];
      if (x !== y) return x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
    }
    return 0;
  };
  zeros.sort(compare);
  const merged: UsageRow[] = [];
  for (const row of rows) {
    while (zeros.length && compare(zeros[0]!, row) < 0) merged.push(zeros.shift()!);
    merged.push(row);
  }
  return [...merged, ...zeros];
}
