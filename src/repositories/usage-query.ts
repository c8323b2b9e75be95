import type { Db } from "../db/client.js";
import { deploymentsFailing } from "./deployments.js";
import { notBeingErased } from "./erasure.js";
import { hardwarePriceAt, modelPriceAt, modelSkuAt } from "./prices.js";

export const GROUP_BY = ["date", "connection", "model", "deployment", "source", "status"] as const;
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
  source?: string;
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
  billableSeconds?: number;
  inputTokens?: number;
  outputTokens?: number;
  /** Estimate from the price book (decimal string, USD, unrounded); idle floor not included. */
  estimatedCostUsd?: string;
  /** hardware_seconds | tokens | outputs | unpriced, or mixed when the row adds up several. */
  costBasis?: string;
  hardwareCostUsd?: string;
  tokenCostUsd?: string;
  outputCostUsd?: string;
  /** Predictions in rows that have a price (aborted ones count, at zero). */
  pricedPredictions?: number;
  /** pricedPredictions / predictions, 4 decimals. */
  pricedShare?: string | null;
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
  date: `to_char(d.usage_date, 'YYYY-MM-DD') AS "date"`,
  connection: `d.connection_id::text AS "connectionId"`,
  model: `d.model AS "model"`,
  deployment: `d.deployment AS "deployment"`,
  source: `d.source AS "source"`,
};

// Grouping by status turns each row's status counts into one row per status. Compute seconds are
// not kept per status, so status-grouped rows carry counts only (and no cost).
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ('succeeded', d.succeeded), ('failed', d.failed), ('canceled', d.canceled),
  ('aborted', d.aborted), ('in_progress', d.in_progress), ('other', d.other)) AS s(status, n)`;

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
      -- While the deployments cannot be read, the model's own price would be a guess at other hardware.
      WHEN d.deployment <> '' AND ${deploymentsFailing("d.connection_id")} THEN 'unpriced'
      WHEN p.in_price IS NOT NULL OR p.out_price IS NOT NULL THEN 'tokens'
      WHEN p.pred_price IS NOT NULL THEN 'outputs'
      WHEN hw.sku_price IS NOT NULL THEN 'hardware_seconds'
      ELSE 'unpriced' END AS basis) b
  CROSS JOIN LATERAL (SELECT CASE b.basis
      WHEN 'hardware_seconds' THEN d.billable_seconds * hw.sku_price
      WHEN 'tokens' THEN d.input_tokens * coalesce(p.in_price, 0) + d.output_tokens * coalesce(p.out_price, 0)
      WHEN 'outputs' THEN d.succeeded * p.pred_price
      ELSE 0 END AS cost) c`;

const money = (expr: string) => `trim_scale(coalesce(${expr}, 0))::text`;
const basisOf = (col: string) => `CASE WHEN count(DISTINCT ${col}) = 1 THEN min(${col}) ELSE 'mixed' END`;

const COST_MEASURES = [
  `${money("sum(c.cost)")} AS "estimatedCostUsd"`,
  `${basisOf("b.basis")} AS "costBasis"`,
  `${money("sum(c.cost) FILTER (WHERE b.basis = 'hardware_seconds')")} AS "hardwareCostUsd"`,
  `${money("sum(c.cost) FILTER (WHERE b.basis = 'tokens')")} AS "tokenCostUsd"`,
  `${money("sum(c.cost) FILTER (WHERE b.basis = 'outputs')")} AS "outputCostUsd"`,
  `coalesce(sum(d.predictions) FILTER (WHERE b.basis <> 'unpriced'), 0)::int AS "pricedPredictions"`,
  `trim_scale(round(coalesce(sum(d.predictions) FILTER (WHERE b.basis <> 'unpriced'), 0)::numeric / nullif(sum(d.predictions), 0), 4))::text AS "pricedShare"`,
];

/** The WHERE clause and parameters every usage query shares: date range plus connection or workspace. */
function scope(q: UsageQuery, date: string, connection: string, workspace: string): { where: string; params: unknown[] } {
  const params: unknown[] = [q.from, q.to];
  const filters = [`${date} BETWEEN $1::date AND $2::date`, notBeingErased(connection)];
  if (q.connectionId) filters.push(`${connection} = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`${workspace} = $${params.push(q.workspaceId)}`);
  return { where: filters.join(" AND "), params };
}

const grouping = (cols: string[]) => (cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : "");

/** Dashboard query over DailyUsage; inclusive date range, grouped by any of date/connection/model/deployment/source/status. */
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
        `sum(d.billable_seconds)::float8 AS "billableSeconds"`,
        // float8 holds token sums exactly up to 2^53 and serialises as a JSON number.
        `sum(d.input_tokens)::float8 AS "inputTokens"`,
        `sum(d.output_tokens)::float8 AS "outputTokens"`,
        ...COST_MEASURES,
      ];
  const { where, params } = scope(q, "d.usage_date", "d.connection_id", "d.workspace_id");
  const sql = `SELECT ${[...select, ...measures].join(", ")}
    FROM daily_usage d ${byStatus ? STATUS_UNPIVOT : PRICED}
    WHERE ${where}${byStatus ? " AND s.n > 0" : ""}
    ${grouping(groupCols)}`;
  const rows = await db.$queryRawUnsafe<UsageResultRow[]>(sql, ...params);
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return rows.filter((r) => r.predictions !== null);
}

const IDLE_COLUMN: Record<Exclude<GroupBy, "status" | "source">, string> = {
  date: `to_char(i.day, 'YYYY-MM-DD') AS "date"`,
  connection: `i.connection_id::text AS "connectionId"`,
  model: `i.model AS "model"`,
  deployment: `i.name AS "deployment"`,
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
  const sql = `SELECT ${[`'idle_floor' AS "line"`, ...dims.map((g) => IDLE_COLUMN[g])].join(", ")},
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

// The measures of an ungrouped-by-status row (queryUsage), each zero in a filled row.
const ALL_MEASURES = [
  "predictions",
  "succeeded",
  "failed",
  "canceled",
  "aborted",
  "inProgress",
  "other",
  "computeSeconds",
  "meteredPredictions",
];
const field = (g: GroupBy) => (g === "connection" ? "connectionId" : g);
const valueOf = (r: UsageResultRow, g: GroupBy) => (r as unknown as Record<string, string | null | undefined>)[field(g)] ?? null;

/**
 * Adds a zero row for each day in `days` that has no row: per connection (key = connection id) with
 * `connection` grouping, else under the key "". A zero row's other dimensions are null, and it is
 * merged in where the query's order puts it (nulls first), the query's rows keeping their order.
 */
export function fillZeroDays(rows: UsageResultRow[], groupBy: GroupBy[], days: Map<string, string[]>): UsageResultRow[] {
  const byConnection = groupBy.includes("connection");
  const seen = new Set(rows.map((r) => `${byConnection ? r.connectionId : ""}|${r.date}`));
  const measures = groupBy.includes("status") ? ["predictions"] : ALL_MEASURES;
  const zero = Object.fromEntries(measures.map((m) => [m, 0]));
  const zeros: UsageResultRow[] = [];
  for (const [connectionId, list] of days) {
    for (const date of list.filter((d) => !seen.has(`${connectionId}|${d}`))) {
      const dims = Object.fromEntries(groupBy.map((g) => [field(g), null]));
      zeros.push({ ...dims, date, ...(byConnection ? { connectionId } : {}), ...zero } as UsageResultRow);
    }
  }
  // Only dates, connection ids and nulls are compared here: the same order in any collation.
  const compare = (a: UsageResultRow, b: UsageResultRow) => {
    for (const g of groupBy) {
      const [x, y] = [valueOf(a, g), valueOf(b, g)];
      if (x !== y) return x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
    }
    return 0;
  };
  zeros.sort(compare);
  const merged: UsageResultRow[] = [];
  for (const row of rows) {
    while (zeros.length && compare(zeros[0]!, row) < 0) merged.push(zeros.shift()!);
    merged.push(row);
  }
  return [...merged, ...zeros];
}
