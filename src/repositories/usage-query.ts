import type { Queryable } from "../db/client.js";
import { deploymentsFailing } from "./deployments.js";
import { notBeingErased } from "./erasure.js";
import { daysBetween } from "../domain/calendar.js";
import type { UsageDayFacts } from "../domain/coverage.js";
import {
  DIMENSION_FIELD,
  STATUS_COUNTS,
  STORED,
  WHOLE_DAY_MINUTES,
  answerOrder,
  basisOf,
  measureSelect,
  money,
  zeroMeasures,
  type GroupBy,
  type UsageRow,
} from "../domain/usage-measures.js";
import { HARDWARE_PRICE_SPANS, MODEL_PRICE_SPANS, MODEL_SKU_SPANS, inSpan, spans } from "./prices.js";

/** `final` is decided afterwards, from coverage (see Finality). */
export type QueriedRow = Omit<UsageRow, "final">;

export interface UsageQuery {
  workspaceId?: string;
  connectionId?: string;
  /** Local calendar days in `timeZone` (validated), inclusive. */
  from: string;
  to: string;
  timeZone: string;
  groupBy: GroupBy[];
}
/** Dedicated hardware bills while idle: min_instances × SKU price × 86 400 s for each day a deployment existed. */
type IdleFloorRow = { line: "idle_floor"; instanceSeconds: number; estimatedCostUsd: string; costBasis: string } & Partial<
  Record<"date" | "connectionId" | "model" | "deployment", string>
>;

// Grouped and ordered by the column itself (a date, a uuid: cheaper than their text, same order), answered as text.
const dimension = (g: GroupBy, column: string) =>
  `${g === "date" ? `to_char(${column}, 'YYYY-MM-DD')` : ["connection", "kind"].includes(g) ? `${column}::text` : column} AS "${DIMENSION_FIELD[g]}"`;
const isoTime = (sql: string) => `to_char(${sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const statusRefreshed = (m: (typeof STATUS_COUNTS)[number]) => `refreshed_${m.column}`;
/**
 * The latest writes usage keeps (`of`, over buckets u): the row's and, grouped by status, each status's, of the quarter hours holding
 * predictions in it, so another status's later write does not move it (README: refreshedAt).
 */
const refreshTimes = (groupBy: GroupBy[]) => [
  { name: "refreshed_at", of: "u.updated_at" },
  ...(groupBy.includes("status")
    ? STATUS_COUNTS.map((m) => ({ name: statusRefreshed(m), of: `CASE WHEN u.${m.column} > 0 THEN u.updated_at END` }))
    : []),
];

// Grouping by status turns each row's status counts into one row per status.
const STATUS_UNPIVOT = `CROSS JOIN LATERAL (VALUES ${STATUS_COUNTS.map((m) => `('${m.status}', d.${m.column}, d.${statusRefreshed(m)})`).join(", ")})
  AS s(status, n, refreshed_at)`;

/** Each release of the deployments in scope applies from the day it was created until the next one. */
const releases = (inScope: string[]) =>
  `releases AS (${spans(
    `deployments WHERE connection_id IN (SELECT cn.id FROM connections cn WHERE ${inScope.join(" AND ")})`,
    "connection_id, name",
    "model, hardware, min_instances, last_seen_on",
    "release_number",
  )})`;

// Priced at query time by the price book in force on the row's UTC day, so a price change recomputes history exactly. A deployment
// bills its hardware; otherwise a model's token prices, then its per-output price, then the hardware an operator mapped it to. A
// training is priced like a prediction of its model. Prices and releases are spans of days: one hash join each, not a lookup per row.
const HARDWARE = `hw AS (${HARDWARE_PRICE_SPANS})`;
const PRICES = `${HARDWARE}, mp AS (${MODEL_PRICE_SPANS}), mh AS (${MODEL_SKU_SPANS})`;
const at = (span: string, on: string) => `${on} AND ${inSpan(span, "d.utc_day")}`;
const PRICED = `
  LEFT JOIN releases dep ON ${at("dep", "dep.connection_id = d.connection_id AND dep.name = d.deployment")}
  LEFT JOIN mh ON ${at("mh", "mh.model = d.model")}
  LEFT JOIN hw ON ${at("hw", "hw.sku = coalesce(dep.hardware, mh.sku)")}
  LEFT JOIN mp pin ON ${at("pin", "pin.model = d.model AND pin.unit = 'input_token'")}
  LEFT JOIN mp pout ON ${at("pout", "pout.model = d.model AND pout.unit = 'output_token'")}
  LEFT JOIN mp pred ON ${at("pred", "pred.model = d.model AND pred.unit = 'prediction'")}
  CROSS JOIN LATERAL (SELECT CASE
      WHEN dep.hardware IS NOT NULL THEN CASE WHEN hw.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END
      -- While the deployments cannot be read, the model's own price would be a guess at other hardware.
      WHEN d.deployment <> '' AND ${deploymentsFailing("d.connection_id")} THEN 'unpriced'
      WHEN pin.price IS NOT NULL OR pout.price IS NOT NULL THEN 'tokens'
      WHEN pred.price IS NOT NULL THEN 'outputs'
      WHEN hw.price IS NOT NULL THEN 'hardware_seconds'
      ELSE 'unpriced' END AS basis) b
  CROSS JOIN LATERAL (SELECT CASE b.basis
      WHEN 'hardware_seconds' THEN d.billable_seconds * hw.price
      WHEN 'tokens' THEN d.input_tokens * coalesce(pin.price, 0) + d.output_tokens * coalesce(pout.price, 0)
      WHEN 'outputs' THEN d.succeeded * pred.price
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
/** Buckets starting within the range's days: a range of the indexed column, whose bounds are constants once planned. */
const startsWithin = (start: (day: string) => string) =>
  `u.bucket_start >= ${start("$1::date")} AND u.bucket_start < ${start("$2::date + 1")}`;

// Where each local day of the range starts, as one sorted array: a bucket's local day is found by
// binary search (width_bucket), so the zone's rules apply once per day rather than once per bucket.
const DAY_STARTS = `day_starts AS (SELECT array_agg(${LOCAL_START("$1::date + i")} ORDER BY i) AS starts
    FROM generate_series(0, $2::date - $1::date + 1) AS i)`;
const LOCAL_DAY = `$1::date + width_bucket(u.bucket_start, (SELECT starts FROM day_starts)) - 1`;
// A whole-day row starting at a UTC midnight is one local day only if the zone is at UTC all that day.
const NOT_LOCAL = `NOT ((u.bucket_start AT TIME ZONE $3::text)::time = '00:00' AND ((u.bucket_start + interval '1 day') AT TIME ZONE $3::text)::time = '00:00')`;

// What the answer and the day facts read: a measure kept but never answered is not summed.
const SUMMED = STORED.filter((m) => !m.internal);
const sums = (from: string) => SUMMED.map((m) => `sum(${from}.${m.column}) AS ${m.column}`).join(", ");
// The usage column a groupBy value keeps apart (the date is the local day; the others are named alike).
const usageColumn = (g: Exclude<GroupBy, "status">) => (g === "date" ? "day" : g === "connection" ? "connection_id" : g);
/** The groupBy values kept apart by a usage column (status is the counts' own dimension). */
const usageDimensions = (groupBy: GroupBy[]) => groupBy.filter((g): g is Exclude<GroupBy, "status"> => g !== "status");

/**
 * The range's usage per connection, UTC and local day, model, deployment (kind and source when grouped by them), in one scan;
 * whole-UTC-day rows count under their UTC date (`utc_only` where it is not the local day). The answer and the day facts read it.
 */
function usageByDay(filters: string[], groupBy: GroupBy[]): string {
  const kept = (["kind", "source"] as const).filter((g) => groupBy.includes(g));
  const keys = ["connection_id", "utc_day", "day", "model", "deployment", ...kept];
  const latest = refreshTimes(groupBy).map((r) => `max(${r.of}) AS ${r.name}`);
  return `${DAY_STARTS},
  usage AS MATERIALIZED (
    SELECT ${keys.join(", ")}, ${sums("u")},
      ${latest.join(", ")}, coalesce(bool_or(CASE WHEN u.bucket_minutes = ${WHOLE_DAY_MINUTES} THEN ${NOT_LOCAL} END), false) AS utc_only
    FROM usage_buckets u
    CROSS JOIN LATERAL (SELECT (u.bucket_start AT TIME ZONE 'UTC')::date AS utc_day) t
    CROSS JOIN LATERAL (SELECT CASE WHEN u.bucket_minutes = ${WHOLE_DAY_MINUTES} THEN t.utc_day ELSE ${LOCAL_DAY} END AS day) l
    WHERE u.bucket_start >= least(${LOCAL_START("$1::date")}, ${UTC_START("$1::date")})
      AND u.bucket_start < greatest(${LOCAL_START("$2::date + 1")}, ${UTC_START("$2::date + 1")})
      AND (u.bucket_minutes = ${WHOLE_DAY_MINUTES} AND ${startsWithin(UTC_START)} OR u.bucket_minutes <> ${WHOLE_DAY_MINUTES} AND ${startsWithin(LOCAL_START)})
      ${filters.map((f) => ` AND ${f}`).join("")}
    GROUP BY ${keys.join(", ")}
  )`;
}

// The usage as priced (`d`): per the answer's dimensions and what a price depends on (the connection
// only for a deployment's release), so the price book is joined once per model and day, not per connection.
function pricedUnits(groupBy: GroupBy[]): string {
  const dims = usageDimensions(groupBy).map(usageColumn);
  const connection = dims.includes("connection_id") ? [] : ["CASE WHEN deployment <> '' THEN connection_id END AS connection_id"];
  const keys = [...new Set([...dims, "utc_day", "model", "deployment"])].concat(connection);
  const latest = refreshTimes(groupBy).map((r) => `max(${r.name}) AS ${r.name}`);
  return `d AS MATERIALIZED (SELECT ${keys.join(", ")}, ${sums("usage")}, ${latest.join(", ")}
    FROM usage GROUP BY ${keys.map((_, i) => i + 1).join(", ")})`;
}

// Finality's and coverage's facts per connection and local day, as days after `from` and epoch ms (cheaper than text).
const DAY_FACTS = `SELECT connection_id::text AS id, day - $1::date AS day, sum(in_progress + other) <> 0 AS unfinished,
    (extract(epoch FROM max(refreshed_at)) * 1000)::float8 AS refreshed, bool_or(utc_only) AS utc_only
  FROM usage GROUP BY connection_id, day`;
interface ReadLine {
  rows: (QueriedRow & { ord?: number })[] | null;
  id: string;
  day: number;
  unfinished: boolean;
  refreshed: number;
  utc_only: boolean;
}

// At most `limit` rows: the caller refuses an answer that would hold more.
const grouping = (cols: string[], limit = Infinity) =>
  `${cols.length ? `GROUP BY ${cols.join(", ")} ORDER BY ${cols.join(", ")}` : ""} ${Number.isFinite(limit) ? `LIMIT ${Math.floor(limit)}` : ""}`;

/** In one statement, the usage rows (one line: a JSON array in the answer's order) and the facts of each day with usage. */
export async function queryUsage(db: Queryable, q: UsageQuery, limit = Infinity): Promise<{ rows: QueriedRow[]; days: UsageDayFacts }> {
  const byStatus = q.groupBy.includes("status");
  const order = answerOrder(q.groupBy);
  const columns = order.map((g) => (g === "status" ? "s.status" : `d.${usageColumn(g)}`));
  const select = order.map((g, i) => dimension(g, columns[i]!));
  const { filters, params } = scope(q, "u.connection_id", "u.workspace_id");
  const priced = byStatus ? "" : `${releases(scope(q, "cn.id", "cn.workspace_id").filters)}, ${PRICES}, `;
  const sql = `WITH ${priced}${usageByDay(filters, q.groupBy)}, ${pricedUnits(q.groupBy)},
    answer AS (
      SELECT ${[...select, ...measureSelect(byStatus), `${isoTime(`max(${byStatus ? "s" : "d"}.refreshed_at)`)} AS "refreshedAt"`].join(", ")},
        row_number() OVER (${columns.length ? `ORDER BY ${columns.join(", ")}` : ""}) AS ord
      FROM d ${byStatus ? STATUS_UNPIVOT : PRICED}
      ${byStatus ? "WHERE s.n > 0" : ""}
      ${grouping(columns, limit)}
    )
    SELECT (SELECT coalesce(json_agg(a ORDER BY a.ord), '[]') FROM answer a) AS rows,
      NULL AS id, NULL::int AS day, NULL::bool AS unfinished, NULL::float8 AS refreshed, NULL::bool AS utc_only
    UNION ALL SELECT NULL, * FROM (${DAY_FACTS}) f`;
  const lines = (await db.query<ReadLine>(sql, params)).rows;
  const dates = daysBetween(q.from, q.to);
  // Pages are written many days at a time: refresh times repeat, and each is formatted once.
  const iso = new Map<number, string>();
  const isoOf = (ms: number) => iso.get(ms) ?? iso.set(ms, new Date(ms).toISOString()).get(ms)!;
  let rows: QueriedRow[] = [];
  const days: UsageDayFacts = new Map();
  for (const l of lines) {
    // Without grouping, an empty range yields one row of nulls: report no rows instead.
    if (l.rows) rows = l.rows.filter((r) => r.predictions !== null).map(({ ord: _, ...r }) => r);
    else {
      const byDay = days.get(l.id) ?? days.set(l.id, new Map()).get(l.id)!;
      byDay.set(dates[l.day]!, { unfinished: l.unfinished, refreshedAt: isoOf(l.refreshed), utcOnly: l.utc_only });
    }
  }
  return { rows, days };
}

// The release column each idle-floor dimension groups by; days are generated per release.
const RELEASE_COLUMN = { connection: "connection_id", model: "model", deployment: "name" } as const;
type IdleDimension = keyof typeof RELEASE_COLUMN | "date";
const idleColumn = (g: IdleDimension) => (g === "date" ? "g.day::date" : `f.${RELEASE_COLUMN[g]}`);

/**
 * The idle floor of deployments in scope, grouped like the usage rows (idle time has no kind, source or status), until the last day
 * a deployment was listed (a local day lasts 23 or 25 hours on DST days). Releases sharing dimensions, hardware and days are added
 * up before their days are generated: the work grows with the deployments in scope, never with the range.
 */
export async function queryIdleFloor(db: Queryable, q: UsageQuery, limit = Infinity): Promise<IdleFloorRow[]> {
  if (q.groupBy.includes("status")) return [];
  const dims = q.groupBy.filter((g): g is IdleDimension => g === "date" || g in RELEASE_COLUMN);
  const kept = [...dims.flatMap((g) => (g === "date" ? [] : [RELEASE_COLUMN[g]])), "hardware"];
  const { filters, params } = scope(q, "cn.id", "cn.workspace_id");
  const sql = `WITH ${releases(filters)}, ${HARDWARE},
    floor AS (
      SELECT ${kept.join(", ")}, sum(min_instances) AS instances,
             greatest(since, $1::date) AS first, least(until - 1, last_seen_on, $2::date) AS last
      FROM releases WHERE min_instances > 0
      GROUP BY ${[...kept, "first", "last"].join(", ")}
    )
    SELECT ${[`'idle_floor' AS "line"`, ...dims.map((g) => dimension(g, idleColumn(g)))].join(", ")},
      sum(f.instances * s.seconds)::float8 AS "instanceSeconds",
      ${money("sum(f.instances * s.seconds * hw.price)")} AS "estimatedCostUsd",
      ${basisOf("CASE WHEN hw.price IS NULL THEN 'unpriced' ELSE 'hardware_seconds' END")} AS "costBasis"
    FROM floor f
    CROSS JOIN generate_series(f.first, f.last, interval '1 day') AS g(day)
    CROSS JOIN LATERAL (SELECT extract(epoch FROM ${LOCAL_START("g.day::date + 1")} - ${LOCAL_START("g.day::date")}) AS seconds) s
    LEFT JOIN hw ON hw.sku = f.hardware AND ${inSpan("hw", "g.day::date")}
    ${grouping(dims.map(idleColumn), limit)}`;
  const { rows } = await db.query<IdleFloorRow>(sql, params);
  return rows.filter((r) => r.instanceSeconds !== null);
}

const valueOf = (r: QueriedRow, g: GroupBy) => ((r as Record<string, unknown>)[DIMENSION_FIELD[g]] as string | null | undefined) ?? null;

/** A zero row for each day of `days` without one (other dimensions null), merged in the query's order; null past `limit` rows. */
export function fillZeroDays(rows: QueriedRow[], groupBy: GroupBy[], days: Map<string, string[]>, limit = Infinity): QueriedRow[] | null {
  const byConnection = groupBy.includes("connection");
  const seen = new Set(rows.map((r) => `${byConnection ? r.connectionId : ""}|${r.date}`));
  const zero = zeroMeasures(groupBy.includes("status"));
  const zeros: QueriedRow[] = [];
  for (const [connectionId, list] of days) {
    for (const date of list.filter((d) => !seen.has(`${connectionId}|${d}`))) {
      const dims = Object.fromEntries(groupBy.map((g) => [DIMENSION_FIELD[g], null]));
      zeros.push({ ...dims, date, ...(byConnection ? { connectionId } : {}), ...zero, refreshedAt: null } as QueriedRow);
      if (rows.length + zeros.length > limit) return null;
    }
  }
  // The SQL's order, nulls first. Only dates, connection ids and nulls are compared here: the same order in any collation.
  const order = answerOrder(groupBy);
  const compare = (a: QueriedRow, b: QueriedRow) => {
    for (const g of order) {
      const [x, y] = [valueOf(a, g), valueOf(b, g)];
      if (x !== y) return x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
    }
    return 0;
  };
  zeros.sort(compare);
  const merged: QueriedRow[] = [];
  let z = 0;
  for (const row of rows) {
    while (z < zeros.length && compare(zeros[z]!, row) < 0) merged.push(zeros[z++]!);
    merged.push(row);
  }
  return merged.concat(zeros.slice(z));
}
