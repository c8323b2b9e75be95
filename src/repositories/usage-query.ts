import type { Queryable } from "../db/client.js";
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
import { HARDWARE_PRICE_SPANS, MODEL_PRICE_SPANS, MODEL_SKU_SPANS, inSpan, spans } from "./prices.js";

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
  date: "d.usage_date",
  connection: "d.connection_id",
  model: "d.model",
  deployment: "d.deployment",
  source: "d.source",
};
// Grouped and ordered by the column itself (a date, a uuid: cheaper than their text, and the same
// order), answered as text.
const dimension = (g: GroupBy, column: string) =>
  `${g === "date" ? `to_char(${column}, 'YYYY-MM-DD')` : g === "connection" ? `${column}::text` : column} AS "${DIMENSION_FIELD[g]}"`;

// Grouping by status turns each row's status counts into one row per status.
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ${STATUS_COUNTS.map((m) => `('${m.status}', d.${m.column})`).join(", ")}) AS s(status, n)`;

/** The releases of the deployments in scope as spans: each applies from the day it was created until the next one. */
const releases = (inScope: string) =>
  `releases AS (${spans(
    `deployments WHERE connection_id IN (SELECT cn.id FROM connections cn WHERE ${inScope})`,
    "connection_id, name",
    "model, hardware, min_instances, last_seen_on",
    "release_number",
  )})`;

// Each daily row is priced at query time by the price book in force on its day, so a price change
// recomputes history exactly. A deployment bills its hardware; otherwise a model's token prices,
// then its per-output price, then the hardware an operator mapped it to; else it is unpriced.
// billable_seconds and the token sums exclude aborted predictions, which Replicate does not bill.
const HARDWARE = `hw AS (${HARDWARE_PRICE_SPANS})`;
const PRICES = `${HARDWARE}, mp AS (${MODEL_PRICE_SPANS}), mh AS (${MODEL_SKU_SPANS})`;
const at = (span: string, on: string) => `${on} AND ${inSpan(span, "d.usage_date")}`;
const PRICED = `
  LEFT JOIN releases dep ON ${at("dep", "dep.connection_id = d.connection_id AND dep.name = d.deployment")}
  LEFT JOIN mh ON ${at("mh", "mh.model = d.model")}
  LEFT JOIN hw ON ${at("hw", "hw.sku = coalesce(dep.hardware, mh.sku)")}
  LEFT JOIN mp pin ON ${at("pin", "pin.model = d.model AND pin.unit = 'input_token'")}
  LEFT JOIN mp pout ON ${at("pout", "pout.model = d.model AND pout.unit = 'output_token'")}
  LEFT JOIN mp pred ON ${at("pred", "pred.model = d.model AND pred.unit = 'prediction'")}
  CROSS JOIN LATERAL (SELECT CASE
      WHEN dep.hardware IS NOT NULL THEN CASE WHEN hw.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END
      WHEN pin.price IS NOT NULL OR pout.price IS NOT NULL THEN 'tokens'
      WHEN pred.price IS NOT NULL THEN 'outputs'
      WHEN hw.price IS NOT NULL THEN 'hardware_seconds'
      ELSE 'unpriced' END AS basis) b
  CROSS JOIN LATERAL (SELECT CASE b.basis
      WHEN 'hardware_seconds' THEN d.billable_seconds * hw.price
      WHEN 'tokens' THEN d.input_tokens * coalesce(pin.price, 0) + d.output_tokens * coalesce(pout.price, 0)
      WHEN 'outputs' THEN d.succeeded * pred.price
      ELSE 0 END AS cost) c`;

/** The WHERE clause and parameters every usage query shares: date range ($1, $2) plus connection or workspace. */
function scope(q: UsageQuery, date: string | null, connection: string, workspace: string): { where: string; params: unknown[] } {
  const params: unknown[] = [q.from, q.to];
  const filters = date ? [`${date} BETWEEN $1::date AND $2::date`] : [];
  if (q.connectionId) filters.push(`${connection} = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`${workspace} = $${params.push(q.workspaceId)}`);
  return { where: filters.join(" AND "), params };
}

// At most `limit` rows: the caller refuses an answer that would hold more.
const grouping = (cols: string[], limit: number) =>
  `${cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : ""} ${Number.isFinite(limit) ? `LIMIT ${Math.floor(limit)}` : ""}`;

/** Dashboard query over DailyUsage; inclusive date range, grouped by any of date/connection/model/deployment/source/status. */
export async function queryUsage(db: Queryable, q: UsageQuery, limit = Infinity): Promise<UsageRow[]> {
  const byStatus = q.groupBy.includes("status");
  const dims = q.groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");
  const columns = [...dims.map((g) => COLUMN[g]), ...(byStatus ? ["s.status"] : [])];
  const select = [...dims, ...(byStatus ? (["status"] as const) : [])].map((g, i) => dimension(g, columns[i]!));
  const { where, params } = scope(q, "d.usage_date", "d.connection_id", "d.workspace_id");
  const priced = `WITH ${releases(scope(q, null, "cn.id", "cn.workspace_id").where)}, ${PRICES}`;
  const sql = `${byStatus ? "" : priced} SELECT ${[...select, ...measureSelect(byStatus)].join(", ")}
    FROM daily_usage d ${byStatus ? STATUS_UNPIVOT : PRICED}
    WHERE ${where}${byStatus ? " AND s.n > 0" : ""}
    ${grouping(columns, limit)}`;
  const { rows } = await db.query<UsageRow>(sql, params);
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return rows.filter((r) => r.predictions !== null);
}

// The release column each idle-floor dimension groups by; days are generated per release.
const RELEASE_COLUMN = { connection: "connection_id", model: "model", deployment: "name" } as const;
type IdleDimension = keyof typeof RELEASE_COLUMN | "date";
const idleColumn = (g: IdleDimension) => (g === "date" ? "g.day::date" : `f.${RELEASE_COLUMN[g]}`);

/**
 * The idle floor of deployments in scope, grouped like the usage rows (by date, connection, model,
 * deployment; not by source or status, which idle time has none of). A release's configuration
 * applies from the day it was created until the next release, or the last day the deployment was
 * listed. Releases that share the answer's dimensions, hardware and days are added up before their
 * days are generated, and days only within each one's span: the work grows with the deployments in
 * scope and their days, never with the range (none in scope, nothing to do).
 */
export async function queryIdleFloor(db: Queryable, q: UsageQuery, limit = Infinity): Promise<IdleFloorRow[]> {
  if (q.groupBy.includes("status")) return [];
  const dims = q.groupBy.filter((g): g is IdleDimension => g === "date" || g in RELEASE_COLUMN);
  const kept = [...dims.flatMap((g) => (g === "date" ? [] : [RELEASE_COLUMN[g]])), "hardware"];
  const { where, params } = scope(q, null, "cn.id", "cn.workspace_id");
  const sql = `WITH ${releases(where)}, ${HARDWARE},
    floor AS (
      SELECT ${kept.join(", ")}, sum(min_instances) AS instances,
             greatest(since, $1::date) AS first, least(until - 1, last_seen_on, $2::date) AS last
      FROM releases WHERE min_instances > 0
      GROUP BY ${[...kept, "first", "last"].join(", ")}
    )
    SELECT ${[`'idle_floor' AS "line"`, ...dims.map((g) => dimension(g, idleColumn(g)))].join(", ")},
      sum(f.instances * 86400)::float8 AS "instanceSeconds",
      ${money("sum(f.instances * 86400 * hw.price)")} AS "estimatedCostUsd",
      ${basisOf("CASE WHEN hw.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END")} AS "costBasis"
    FROM floor f
    CROSS JOIN generate_series(f.first, f.last, interval '1 day') AS g(day)
    LEFT JOIN hw ON hw.sku = f.hardware AND ${inSpan("hw", "g.day::date")}
    ${grouping(dims.map(idleColumn), limit)}`;
  const { rows } = await db.query<IdleFloorRow>(sql, params);
  return rows.filter((r) => r.instanceSeconds !== null);
}

const valueOf = (r: UsageRow, g: GroupBy) => ((r as Record<string, unknown>)[DIMENSION_FIELD[g]] as string | null | undefined) ?? null;

/**
 * Adds a zero row for each day in `days` that has no row: per connection (key = connection id) with
 * `connection` grouping, else under the key "". A zero row's other dimensions are null, and it is
 * merged in where the query's order puts it (nulls first), the query's rows keeping their order.
 * Null when the rows would be more than `limit`.
 */
export function fillZeroDays(rows: UsageRow[], groupBy: GroupBy[], days: Map<string, string[]>, limit = Infinity): UsageRow[] | null {
  const byConnection = groupBy.includes("connection");
  const seen = new Set(rows.map((r) => `${byConnection ? r.connectionId : ""}|${r.date}`));
  const zero = zeroMeasures(groupBy.includes("status"));
  const zeros: UsageRow[] = [];
  for (const [connectionId, list] of days) {
    for (const date of list.filter((d) => !seen.has(`${connectionId}|${d}`))) {
      const dims = Object.fromEntries(groupBy.map((g) => [DIMENSION_FIELD[g], null]));
      zeros.push({ ...dims, date, ...(byConnection ? { connectionId } : {}), ...zero } as UsageRow);
      if (rows.length + zeros.length > limit) return null;
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
  let z = 0;
  for (const row of rows) {
    while (z < zeros.length && compare(zeros[z]!, row) < 0) merged.push(zeros[z++]!);
    merged.push(row);
  }
  return merged.concat(zeros.slice(z));
}
