import type { Db } from "../db/client.js";
import { deploymentsFailing } from "./deployments.js";
import { notBeingErased } from "./erasure.js";
import type { UsageDayFacts } from "../domain/coverage.js";
import {
  DIMENSION_FIELD,
  STATUS_COUNTS,
  STORED,
  WHOLE_DAY_MINUTES,
  basisOf,
  measureSelect,
  money,
  zeroMeasures,
  type GroupBy,
  type UsageRow,
} from "../domain/usage-measures.js";
import { hardwarePriceAt, modelPriceAt, modelSkuAt } from "./prices.js";

export { GROUP_BY, type GroupBy } from "../domain/usage-measures.js";

/** A usage row as read: whether it is final is decided afterwards, from coverage (see Finality). */
export type QueriedRow = Omit<UsageRow, "final">;

export interface UsageQuery {
  workspaceId?: string;
  connectionId?: string;
  /** Local calendar days in `timeZone`, inclusive. */
  from: string;
  to: string;
  /** IANA time zone name, already validated (src/domain/calendar.ts). */
  timeZone: string;
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
  date: "to_char(d.day, 'YYYY-MM-DD')",
  connection: "d.connection_id::text",
  kind: "d.kind::text",
  model: "d.model",
  deployment: "d.deployment",
  source: "d.source",
};
const dimension = (g: GroupBy, sql: string) => `${sql} AS "${DIMENSION_FIELD[g]}"`;
const isoTime = (sql: string) => `to_char(${sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

// Grouping by status turns each row's status counts into one row per status.
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ${STATUS_COUNTS.map((m) => `('${m.status}', d.${m.column})`).join(", ")}) AS s(status, n)`;

// Each row is priced at query time by the price book in force on its UTC day, so a price change
// recomputes history exactly. A deployment bills its hardware; otherwise a model's token prices,
// then its per-output price, then the hardware an operator mapped it to; else it is unpriced. None of
// this looks at the kind: a training is priced like a prediction of its model (the trainer's hardware).
// billable_seconds and the token sums exclude aborted predictions, which Replicate does not bill.
const PRICED = `
  CROSS JOIN LATERAL (SELECT (SELECT x.hardware FROM deployments x WHERE x.connection_id = d.connection_id AND x.name = d.deployment
                              AND x.effective_from <= d.utc_day ORDER BY x.effective_from DESC, x.release_number DESC LIMIT 1) AS dep_sku) dep
  CROSS JOIN LATERAL (SELECT coalesce(dep.dep_sku, ${modelSkuAt("d.model", "d.utc_day")}) AS sku,
                             ${modelPriceAt("d.model", "input_token", "d.utc_day")} AS in_price,
                             ${modelPriceAt("d.model", "output_token", "d.utc_day")} AS out_price,
                             ${modelPriceAt("d.model", "prediction", "d.utc_day")} AS pred_price) p
  CROSS JOIN LATERAL (SELECT ${hardwarePriceAt("p.sku", "d.utc_day")} AS sku_price) hw
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

/** The range ($1, $2: local days), the zone ($3) and connection or workspace: what every usage query shares. */
function scope(q: UsageQuery, connection: string, workspace: string): { filters: string[]; params: unknown[] } {
  const params: unknown[] = [q.from, q.to, q.timeZone];
  const filters = [notBeingErased(connection)];
  if (q.connectionId) filters.push(`${connection} = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`${workspace} = $${params.push(q.workspaceId)}`);
  return { filters, params };
}

const LOCAL_START = (day: string) => `(${day})::timestamp AT TIME ZONE $3::text`;
const UTC_START = (day: string) => `(${day})::timestamp AT TIME ZONE 'UTC'`;

/**
 * The usage of the range per connection, UTC day, local day, kind, model, deployment and source
 * (`d`): quarter hours summed into the local day they fall in, which a UTC day shares with at most one
 * other, so pricing (per UTC day) costs about what it did per day. A whole-UTC-day row (1440) counts
 * under its UTC date; `utc_only` marks where that is not the local day, i.e. the zone is not at UTC
 * all that day. `refreshed_at` is when a page holding these predictions was last written.
 */
function usageByDay(q: UsageQuery): { sql: string; params: unknown[] } {
  const { filters, params } = scope(q, "u.connection_id", "u.workspace_id");
  const sql = `
    SELECT u.connection_id, t.utc_day, l.day, u.kind, u.model, u.deployment, u.source,
      ${STORED.map((m) => `sum(u.${m.column}) AS ${m.column}`).join(", ")},
      max(u.updated_at) AS refreshed_at,
      bool_or(u.bucket_minutes = ${WHOLE_DAY_MINUTES} AND NOT (
        (u.bucket_start AT TIME ZONE $3::text)::time = '00:00' AND ((u.bucket_start + interval '1 day') AT TIME ZONE $3::text)::time = '00:00'
      )) AS utc_only
    FROM usage_buckets u
    CROSS JOIN LATERAL (SELECT (u.bucket_start AT TIME ZONE 'UTC')::date AS utc_day) t
    CROSS JOIN LATERAL (SELECT CASE WHEN u.bucket_minutes = ${WHOLE_DAY_MINUTES} THEN t.utc_day
                                    ELSE (u.bucket_start AT TIME ZONE $3::text)::date END AS day) l
    WHERE u.bucket_start >= least(${LOCAL_START("$1::date")}, ${UTC_START("$1::date")})
      AND u.bucket_start < greatest(${LOCAL_START("$2::date + 1")}, ${UTC_START("$2::date + 1")})
      AND l.day BETWEEN $1::date AND $2::date${filters.map((f) => ` AND ${f}`).join("")}
    GROUP BY u.connection_id, t.utc_day, l.day, u.kind, u.model, u.deployment, u.source`;
  return { sql, params };
}

const grouping = (cols: string[]) => (cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : "");

/**
 * Dashboard query over usage; an inclusive range of local days in the query's zone, grouped by any of
 * date/connection/kind/model/deployment/source/status. Rows carry `refreshedAt`; `final` is the caller's (see Finality).
 */
export async function queryUsage(db: Db, q: UsageQuery): Promise<QueriedRow[]> {
  const byStatus = q.groupBy.includes("status");
  const dims = q.groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");
  const select = dims.map((g) => dimension(g, COLUMN[g]));
  const groupCols = dims.map((_, i) => String(i + 1));
  if (byStatus) {
    select.push(dimension("status", "s.status"));
    groupCols.push(String(select.length));
  }
  const { sql: days, params } = usageByDay(q);
  const sql = `SELECT ${[...select, ...measureSelect(byStatus), `${isoTime("max(d.refreshed_at)")} AS "refreshedAt"`].join(", ")}
    FROM (${days}) d ${byStatus ? STATUS_UNPIVOT : PRICED}
    ${byStatus ? "WHERE s.n > 0" : ""}
    ${grouping(groupCols)}`;
  const rows = await db.$queryRawUnsafe<QueriedRow[]>(sql, ...params);
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return rows.filter((r) => r.predictions !== null);
}

/** Per connection and local day of the range that has usage: what finality and coverage need to know of it. */
export async function queryUsageDays(db: Db, q: UsageQuery): Promise<UsageDayFacts> {
  const { sql: days, params } = usageByDay(q);
  const rows = await db.$queryRawUnsafe<{ id: string; date: string; unfinished: boolean; refreshedAt: Date; utcOnly: boolean }[]>(
    `SELECT d.connection_id::text AS id, to_char(d.day, 'YYYY-MM-DD') AS date, sum(d.in_progress + d.other) <> 0 AS unfinished,
       max(d.refreshed_at) AS "refreshedAt", bool_or(d.utc_only) AS "utcOnly"
     FROM (${days}) d GROUP BY d.connection_id, d.day`,
    ...params,
  );
  const facts: UsageDayFacts = new Map();
  for (const r of rows) {
    const days = facts.get(r.id) ?? facts.set(r.id, new Map()).get(r.id)!;
    days.set(r.date, { unfinished: r.unfinished, refreshedAt: r.refreshedAt, utcOnly: r.utcOnly });
  }
  return facts;
}

const IDLE_COLUMN: Record<Exclude<GroupBy, "status" | "source" | "kind">, string> = {
  date: "to_char(i.day, 'YYYY-MM-DD')",
  connection: "i.connection_id::text",
  model: "i.model",
  deployment: "i.name",
};

/**
 * The idle floor of deployments in scope, grouped like the usage rows (by date, connection, model,
 * deployment; not by kind, source or status, which idle time has none of). A release's configuration
 * applies from the day it was created until the deployment was last listed. A local day is as long
 * as it is in the query's zone (23 or 25 hours on DST days).
 */
export async function queryIdleFloor(db: Db, q: UsageQuery): Promise<IdleFloorRow[]> {
  if (q.groupBy.includes("status")) return [];
  const dims = q.groupBy.filter((g): g is keyof typeof IDLE_COLUMN => g in IDLE_COLUMN);
  const { filters, params } = scope(q, "cn.id", "cn.workspace_id");
  const sql = `SELECT ${[`'idle_floor' AS "line"`, ...dims.map((g) => dimension(g, IDLE_COLUMN[g]))].join(", ")},
      sum(i.min_instances * i.seconds)::float8 AS "instanceSeconds",
      ${money("sum(i.min_instances * i.seconds * i.price)")} AS "estimatedCostUsd",
      ${basisOf("CASE WHEN i.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END")} AS "costBasis"
    FROM (
      SELECT g.day::date AS day, cn.id AS connection_id, x.name, x.model, x.min_instances, ${hardwarePriceAt("x.hardware", "g.day::date")} AS price,
             extract(epoch FROM ${LOCAL_START("g.day::date + 1")} - ${LOCAL_START("g.day::date")}) AS seconds
      FROM connections cn
      CROSS JOIN generate_series($1::date, $2::date, interval '1 day') AS g(day)
      CROSS JOIN LATERAL (
        SELECT DISTINCT ON (x.name) x.name, x.model, x.hardware, x.min_instances FROM deployments x
        WHERE x.connection_id = cn.id AND x.effective_from <= g.day::date AND g.day::date <= x.last_seen_on
        ORDER BY x.name, x.effective_from DESC, x.release_number DESC
      ) x
      WHERE ${[...filters, "x.min_instances > 0"].join(" AND ")}
    ) i
    ${grouping(dims.map((_, i) => String(i + 2)))}`;
  const rows = await db.$queryRawUnsafe<IdleFloorRow[]>(sql, ...params);
  return rows.filter((r) => r.instanceSeconds !== null);
}

const valueOf = (r: QueriedRow, g: GroupBy) => ((r as Record<string, unknown>)[DIMENSION_FIELD[g]] as string | null | undefined) ?? null;

/**
 * Adds a zero row for each day in `days` that has no row: per connection (key = connection id) with
 * `connection` grouping, else under the key "". A zero row's other dimensions are null, and it is
 * merged in where the query's order puts it (nulls first), the query's rows keeping their order.
 */
export function fillZeroDays(rows: QueriedRow[], groupBy: GroupBy[], days: Map<string, string[]>): QueriedRow[] {
  const byConnection = groupBy.includes("connection");
  const seen = new Set(rows.map((r) => `${byConnection ? r.connectionId : ""}|${r.date}`));
  const zero = zeroMeasures(groupBy.includes("status"));
  const zeros: QueriedRow[] = [];
  for (const [connectionId, list] of days) {
    for (const date of list.filter((d) => !seen.has(`${connectionId}|${d}`))) {
      const dims = Object.fromEntries(groupBy.map((g) => [DIMENSION_FIELD[g], null]));
      zeros.push({ ...dims, date, ...(byConnection ? { connectionId } : {}), ...zero, refreshedAt: null } as QueriedRow);
    }
  }
  // Only dates, connection ids and nulls are compared here: the same order in any collation.
  const compare = (a: QueriedRow, b: QueriedRow) => {
    for (const g of groupBy) {
      const [x, y] = [valueOf(a, g), valueOf(b, g)];
      if (x !== y) return x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
    }
    return 0;
  };
  zeros.sort(compare);
  const merged: QueriedRow[] = [];
  for (const row of rows) {
    while (zeros.length && compare(zeros[0]!, row) < 0) merged.push(zeros.shift()!);
    merged.push(row);
  }
  return [...merged, ...zeros];
}
