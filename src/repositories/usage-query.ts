import type { Db } from "../db/client.js";
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
// Prices are looked up once per deployment and UTC day and per model and UTC day, not once per row
// (MATERIALIZED and OFFSET 0 keep the planner from copying each lookup into every expression that reads it).
const PRICES = `
  deployment_prices AS MATERIALIZED (
    SELECT k.connection_id, k.deployment, k.utc_day, x.sku, ${hardwarePriceAt("x.sku", "k.utc_day")} AS sku_price
    FROM (SELECT DISTINCT connection_id, deployment, utc_day FROM d WHERE deployment <> '') k
    CROSS JOIN LATERAL (SELECT x.hardware AS sku FROM deployments x WHERE x.connection_id = k.connection_id AND x.name = k.deployment
                        AND x.effective_from <= k.utc_day ORDER BY x.effective_from DESC, x.release_number DESC LIMIT 1) x
  ),
  model_day_prices AS MATERIALIZED (
    SELECT k.model, k.utc_day, p.*, ${hardwarePriceAt("p.sku", "k.utc_day")} AS sku_price
    FROM (SELECT DISTINCT model, utc_day FROM d) k
    CROSS JOIN LATERAL (SELECT ${modelSkuAt("k.model", "k.utc_day")} AS sku,
                               ${modelPriceAt("k.model", "input_token", "k.utc_day")} AS in_price,
                               ${modelPriceAt("k.model", "output_token", "k.utc_day")} AS out_price,
                               ${modelPriceAt("k.model", "prediction", "k.utc_day")} AS pred_price OFFSET 0) p
  )`;
const PRICED = `
  LEFT JOIN deployment_prices dp ON dp.connection_id = d.connection_id AND dp.deployment = d.deployment AND dp.utc_day = d.utc_day
  JOIN model_day_prices mp ON mp.model = d.model AND mp.utc_day = d.utc_day
  CROSS JOIN LATERAL (SELECT CASE
      WHEN dp.sku IS NOT NULL THEN CASE WHEN dp.sku_price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END
      WHEN mp.in_price IS NOT NULL OR mp.out_price IS NOT NULL THEN 'tokens'
      WHEN mp.pred_price IS NOT NULL THEN 'outputs'
      WHEN mp.sku_price IS NOT NULL THEN 'hardware_seconds'
      ELSE 'unpriced' END AS basis) b
  CROSS JOIN LATERAL (SELECT CASE b.basis
      WHEN 'hardware_seconds' THEN d.billable_seconds * CASE WHEN dp.sku IS NOT NULL THEN dp.sku_price ELSE mp.sku_price END
      WHEN 'tokens' THEN d.input_tokens * coalesce(mp.in_price, 0) + d.output_tokens * coalesce(mp.out_price, 0)
      WHEN 'outputs' THEN d.succeeded * mp.pred_price
      ELSE 0 END AS cost) c`;

/** The range ($1, $2: local days), the zone ($3) and connection or workspace: what every usage query shares. */
function scope(q: UsageQuery, connection: string, workspace: string): { filters: string[]; params: unknown[] } {
  const params: unknown[] = [q.from, q.to, q.timeZone];
  const filters: string[] = [];
  if (q.connectionId) filters.push(`${connection} = $${params.push(q.connectionId)}::uuid`);
  if (q.workspaceId) filters.push(`${workspace} = $${params.push(q.workspaceId)}`);
  return { filters, params };
}

const LOCAL_START = (day: string) => `(${day})::timestamp AT TIME ZONE $3::text`;
const UTC_START = (day: string) => `(${day})::timestamp AT TIME ZONE 'UTC'`;

/**
 * The usage of the range per connection, UTC day, local day, model and deployment, and kind and
 * source when grouped by them (CTE `d`): quarter hours summed into the local day they fall in, which a UTC day shares with at most
 * one other, so pricing (per UTC day) costs about what it did per day. A whole-UTC-day row (1440)
 * counts under its UTC date; `utc_only` marks where that is not the local day, i.e. the zone is not
 * at UTC all that day. `refreshed_at` is when a page holding these predictions was last written.
 * The local-day filter is applied after summing (MATERIALIZED keeps it there): on the rows it would
 * make the planner guess a handful and sort on disk.
 */
function usageByDay(q: UsageQuery, dims: readonly GroupBy[]): { ctes: string; params: unknown[] } {
  const { filters, params } = scope(q, "u.connection_id", "u.workspace_id");
  // Kind and source only when grouped by: every other key is what pricing or finality needs.
  const key = [
    "u.connection_id",
    "t.utc_day",
    "l.day",
    "u.model",
    "u.deployment",
    ...(["kind", "source"] as const).filter((g) => dims.includes(g)).map((g) => `u.${g}`),
  ];
  const ctes = `
    g AS MATERIALIZED (
      SELECT ${key.join(", ")},
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
        AND u.bucket_start < greatest(${LOCAL_START("$2::date + 1")}, ${UTC_START("$2::date + 1")})${filters.map((f) => ` AND ${f}`).join("")}
      GROUP BY ${key.join(", ")}
    ),
    d AS (SELECT * FROM g WHERE g.day BETWEEN $1::date AND $2::date)`;
  return { ctes, params };
}

/**
 * Dashboard query over usage; an inclusive range of local days in the query's zone, grouped by any of
 * date/connection/kind/model/deployment/source/status. Rows carry `refreshedAt`; `final` is the
 * caller's (see Finality), from `days`: per connection and local day with usage, what finality and
 * coverage need to know of it. One statement: both come from one pass over the quarter hours, in one snapshot.
 */
export async function queryUsage(db: Db, q: UsageQuery): Promise<{ rows: QueriedRow[]; days: UsageDayFacts }> {
  const byStatus = q.groupBy.includes("status");
  const dims = q.groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");
  const select = dims.map((g) => dimension(g, COLUMN[g]));
  const groupCols = dims.map((_, i) => String(i + 1));
  if (byStatus) {
    select.push(dimension("status", "s.status"));
    groupCols.push(String(select.length));
  }
  const order = [...dims, ...(byStatus ? (["status"] as const) : [])].map((g) => `r."${DIMENSION_FIELD[g]}"`);
  const { ctes, params } = usageByDay(q, dims);
  const sql = `WITH ${ctes}${byStatus ? "" : `, ${PRICES}`},
    r AS (
      SELECT ${[...select, ...measureSelect(byStatus), `${isoTime("max(d.refreshed_at)")} AS "refreshedAt"`].join(", ")}
      FROM d ${byStatus ? STATUS_UNPIVOT : PRICED}
      ${byStatus ? "WHERE s.n > 0" : ""}
      ${groupCols.length ? `GROUP BY ${groupCols.join(", ")}` : ""}
    ),
    f AS (
      SELECT d.connection_id::text AS id, to_char(d.day, 'YYYY-MM-DD') AS date, sum(d.in_progress + d.other) <> 0 AS unfinished,
        ${isoTime("max(d.refreshed_at)")} AS "refreshedAt", bool_or(d.utc_only) AS "utcOnly"
      FROM d GROUP BY d.connection_id, d.day
    )
    SELECT (SELECT coalesce(json_agg(r${order.length ? ` ORDER BY ${order.join(", ")}` : ""}), '[]') FROM r) AS rows,
           (SELECT coalesce(json_agg(f), '[]') FROM f) AS days`;
  const [answer] = await db.$queryRawUnsafe<
    { rows: QueriedRow[]; days: { id: string; date: string; unfinished: boolean; refreshedAt: string; utcOnly: boolean }[] }[]
  >(sql, ...params);
  const days: UsageDayFacts = new Map();
  for (const f of answer!.days) {
    const byDay = days.get(f.id) ?? days.set(f.id, new Map()).get(f.id)!;
    byDay.set(f.date, { unfinished: f.unfinished, refreshedAt: new Date(f.refreshedAt), utcOnly: f.utcOnly });
  }
  // Without grouping, an empty range yields one row of nulls: report no rows instead.
  return { rows: answer!.rows.filter((r) => r.predictions !== null), days };
}

const grouping = (cols: string[]) => (cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : "");

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
