import type { UsageKind } from "../generated/prisma/enums.js";
import { IN_PROGRESS_STATUSES, TERMINAL_STATUSES, sqlList } from "./prediction-status.js";

// A usage row's dimensions and measures: the write, the query, zero rows, schemas and CSV derive from these tables, so none misses one.

/** A prediction or a training: both bill compute seconds; ids are unique within a kind. */
export type { UsageKind };

/** Usage is kept in UTC quarter hours: every real time zone's offset is a multiple of 15 minutes. */
export const BUCKET_MINUTES = 15;
/** Whole UTC days kept from before quarter hours (their ledger was pruned): exact only in UTC. */
export const WHOLE_DAY_MINUTES = 1440;
/** The UTC quarter hour an SQL timestamptz falls in. */
export const quarterHourOf = (timestamptz: string) =>
  `date_bin('${BUCKET_MINUTES} minutes', ${timestamptz}, TIMESTAMPTZ '2000-01-01 00:00:00+00')`;

export const GROUP_BY = ["date", "connection", "kind", "model", "deployment", "source", "status"] as const;
export type GroupBy = (typeof GROUP_BY)[number];

/** The field each groupBy value is answered under. */
export const DIMENSION_FIELD = {
  date: "date",
  connection: "connectionId",
  kind: "kind",
  model: "model",
  deployment: "deployment",
  source: "source",
  status: "status",
} as const satisfies Record<GroupBy, string>;

/** How a measure is typed in SQL answers and JSON, and its value in a zero row (a day without usage). */
const MEASURE_TYPES = {
  count: { sql: "int", zero: 0 },
  // float8 holds sums of seconds and tokens exactly up to 2^53 and serialises as a JSON number.
  amount: { sql: "float8", zero: 0 },
  /** USD as a decimal string, never a float. */
  usd: { sql: "text", zero: "0" },
  /** A description of the priced rows; nothing was priced on a day without usage. */
  label: { sql: "text", zero: null },
} as const;
export type MeasureType = keyof typeof MEASURE_TYPES;

interface Measure {
  name: string;
  type: MeasureType;
  about: string;
  /** Stored in usage_buckets: its column and the change ledger rows make to it (each row has a `sign`, 1 or -1). */
  column?: string;
  delta?: string;
  /** Priced when queried, over the query's d (usage), b (basis) and c (cost); see usage-query.ts. */
  priced?: string;
  /** Status-grouped rows (s = one status's count) carry only the measures that say how to sum them. */
  perStatus?: string;
  /** The one status it counts: a row of its own when grouped by status. */
  status?: string;
  /** Stored for later use, not answered. */
  internal?: true;
}

const IN_PROGRESS = sqlList(IN_PROGRESS_STATUSES);
const TERMINAL = sqlList(TERMINAL_STATUSES);
// Replicate does not bill aborted predictions; failed and canceled ones bill the time they ran.
const BILLED = "status <> 'aborted'";
const counted = (where: string) => `coalesce(sum(sign) FILTER (WHERE ${where}), 0)::int`;
// Rounded per prediction: numeric sums are exact, so adding and subtracting never drifts.
const seconds = (column: string, where?: string) =>
  `coalesce(sum(sign * round(${column}::numeric, 6))${where ? ` FILTER (WHERE ${where})` : ""}, 0)`;
const tokens = (column: string) => `coalesce(sum(sign * ${column}) FILTER (WHERE ${BILLED}), 0)::bigint`;

/** USD of an SQL sum as an exact decimal string ("0" for none). */
export const money = (sum: string) => `trim_scale(coalesce(${sum}, 0))::text`;
/** The basis of a group: the one its rows share, else mixed (`column` is never null; min = max needs no sort, count(DISTINCT) does). */
export const basisOf = (column: string) => `CASE WHEN min(${column}) = max(${column}) THEN min(${column}) ELSE 'mixed' END`;
const pricedCount = `coalesce(sum(d.predictions) FILTER (WHERE b.basis <> 'unpriced'), 0)`;

// Literal names and types survive these helpers, so UsageRow below is typed from the table.
function stored<N extends string, T extends MeasureType>(name: N, type: T, column: string, delta: string, about: string) {
  return { name, type, column, delta, about };
}
function priced<N extends string, T extends MeasureType>(name: N, type: T, sql: string, about: string) {
  return { name, type, priced: sql, about };
}
const statusCount = <N extends string>(name: N, status: string, where: string) => {
  const about = status === "other" ? "predictions in a status added after this service" : `${status} predictions`;
  return { ...stored(name, "count", status, counted(where), about), status };
};
const costPart = <N extends string>(name: N, basis: string) =>
  priced(name, "usd", money(`sum(c.cost) FILTER (WHERE b.basis = '${basis}')`), `the part of estimatedCostUsd priced by ${basis}`);

export const MEASURES = [
  {
    ...stored("predictions", "count", "predictions", "sum(sign)::int", "predictions (and trainings) created in the row's days"),
    perStatus: "sum(s.n)::int",
  },
  ...TERMINAL_STATUSES.map((s) => statusCount(s, s, `status = '${s}'`)),
  statusCount("inProgress", "in_progress", `status IN (${IN_PROGRESS})`),
  statusCount("other", "other", `status NOT IN (${TERMINAL}, ${IN_PROGRESS})`),
  stored("computeSeconds", "amount", "compute_seconds", seconds("predict_time"), "sum of predict_time"),
  { ...stored("totalSeconds", "amount", "total_seconds", seconds("total_time"), "sum of total_time"), internal: true as const },
  stored("meteredPredictions", "count", "metered_predictions", counted("predict_time IS NOT NULL"), "predictions reporting a predict_time"),
  stored("billableSeconds", "amount", "billable_seconds", seconds("predict_time", BILLED), "predict_time of the predictions not aborted"),
  stored("inputTokens", "amount", "input_tokens", tokens("input_tokens"), "input tokens of the predictions not aborted"),
  stored("outputTokens", "amount", "output_tokens", tokens("output_tokens"), "output tokens of the predictions not aborted"),
  priced("estimatedCostUsd", "usd", money("sum(c.cost)"), "estimate from the price book; idle floor not included"),
  priced("costBasis", "label", basisOf("b.basis"), "hardware_seconds, tokens, outputs, unpriced, or mixed; null without predictions"),
  costPart("hardwareCostUsd", "hardware_seconds"),
  costPart("tokenCostUsd", "tokens"),
  costPart("outputCostUsd", "outputs"),
  priced("pricedPredictions", "count", `${pricedCount}::int`, "predictions in priced rows"),
  priced(
    "pricedShare",
    "label",
    `trim_scale(round(${pricedCount}::numeric / nullif(sum(d.predictions), 0), 4))::text`,
    "pricedPredictions / predictions, 4 decimals; null without predictions",
  ),
] as const satisfies readonly Measure[];

type AnyMeasure = (typeof MEASURES)[number];
type Answered = Exclude<AnyMeasure, { internal: true }>;
type ValueOf = { count: number; amount: number; usd: string; label: string | null };

/** How settled a row is (never summed; zero rows too). README ("Days, time zones and finality") says what `final` promises. */
export const ROW_STATE = {
  final:
    "every day of the row (each connection and day in scope when not grouped by them) is final: all its predictions and trainings were terminal when read and no later sync can read the day again",
  refreshedAt:
    "when a page holding the row's predictions was last written (the latest of its quarter hours; grouped by status, of those holding predictions in that status); null for a zero row",
} as const;

/** A usage row as the query, the producer and the API answer it. Status-grouped rows carry `predictions` only. */
export type UsageRow = { [D in (typeof DIMENSION_FIELD)[GroupBy]]?: string | null } & { predictions: number } & {
  [M in Answered as M["name"]]?: ValueOf[M["type"]];
} & { final: boolean; refreshedAt: string | null };

const all: readonly Measure[] = MEASURES;
/** The measures usage_buckets stores, in its column order. */
export const STORED = all.filter((m): m is Measure & { column: string; delta: string } => m.column !== undefined);
/** The measures that count one status each, which status grouping turns into rows. */
export const STATUS_COUNTS = STORED.filter((m) => m.status !== undefined);
/** The measures a row answers: by status only those summed per status (no seconds or cost are kept per status). */
export const answered = (byStatus: boolean): readonly Measure[] =>
  all.filter((m) => !m.internal && (!byStatus || m.perStatus !== undefined));

/** The query's SELECT list of measures over usage rows `d` (or per-status counts `s`). */
export const measureSelect = (byStatus: boolean): string[] =>
  answered(byStatus).map((m) => {
    const sum = byStatus ? m.perStatus : (m.priced ?? `sum(d.${m.column})::${MEASURE_TYPES[m.type].sql}`);
    return `${sum} AS "${m.name}"`;
  });

export const zeroMeasures = (byStatus: boolean): Record<string, number | string | null> =>
  Object.fromEntries(answered(byStatus).map((m) => [m.name, MEASURE_TYPES[m.type].zero]));

/** The rows' order as README and OpenAPI state it. */
export const ROW_ORDER =
  "sorted by their groupBy dimensions in the order groupBy lists them, but status always last (as in the CSV's columns); a zero row's null dimensions sort first";
/** The order rows are sorted by and CSV columns follow (ROW_ORDER): groupBy's, with status last (the counts' own dimension). */
export const answerOrder = (groupBy: readonly GroupBy[]): GroupBy[] => [
  ...groupBy.filter((g) => g !== "status"),
  ...groupBy.filter((g) => g === "status"),
];

/** The CSV columns: the line kind, the dimensions, the measures, the row's state, and the idle floor's instance time. */
export const csvColumns = (groupBy: readonly GroupBy[]): string[] => {
  const byStatus = groupBy.includes("status");
  return [
    "line",
    ...answerOrder(groupBy).map((g) => DIMENSION_FIELD[g]),
    ...answered(byStatus).map((m) => m.name),
    ...Object.keys(ROW_STATE),
    ...(byStatus ? [] : ["instanceSeconds"]),
  ];
};
