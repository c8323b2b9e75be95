import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import pg from "pg";
import { createEmptyDatabase } from "../../dev/postgres.js";
import { rng } from "../../dev/predictions.js";

// The migration from daily_usage (UTC days) to usage_buckets (UTC quarter hours), run over data in the
// old shape: every count is kept. Days the ledger still holds are rebuilt from it per quarter hour;
// what it no longer holds (pruned) stays as one whole UTC day (bucket_minutes 1440).

const MIGRATION = readdirSync("prisma/migrations").find((m) => m.endsWith("_usage_quarter_hours_kind_workspace_settings"))!;
const MEASURES = [
  "predictions",
  "succeeded",
  "failed",
  "canceled",
  "aborted",
  "in_progress",
  "other",
  "compute_seconds",
  "total_seconds",
  "metered_predictions",
  "billable_seconds",
  "input_tokens",
  "output_tokens",
];
const A = "00000000-0000-4000-8000-00000000000a";
const B = "00000000-0000-4000-8000-00000000000b";
const HELD = "2026-03-08"; // every prediction still in the ledger
const PARTLY = "2026-02-01"; // some pruned
const PRUNED = "2026-01-10"; // all pruned

let database: Awaited<ReturnType<typeof createEmptyDatabase>>;
let client: pg.Client;
/** daily_usage and the ledger's size just before the migration. */
let before: Record<string, unknown>[];
let ledgerSize: number;
const USAGE_KEY = "connection_id, usage_date, model, deployment, source";

const migrate = (script: string, ...args: string[]) =>
  execFileSync(process.execPath, ["--import", "tsx", script, ...args], {
    env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: "warn", NODE_OPTIONS: "" },
    stdio: ["ignore", "ignore", "inherit"],
  });

/** Ledger rows in the old shape (with usage_date) over `day`, with every status and some metrics missing. */
function ledgerRows(connection: string, day: string, count: number, seed: number) {
  const next = rng(seed);
  const statuses = ["succeeded", "succeeded", "failed", "canceled", "aborted", "processing", "starting", "queued"];
  return Array.from({ length: count }, (_, i) => {
    const created = new Date(Date.parse(`${day}T00:00:00Z`) + Math.floor(next() * 86_400_000));
    const metered = next() < 0.8;
    const predictTime = Math.round(next() * 40_000_000) / 1_000_000;
    return {
      connection,
      id: `${connection.slice(-1)}-${day}-${i}`,
      day,
      model: ["acme/a", "acme/b"][i % 2]!,
      deployment: i % 5 === 0 ? "acme/dep" : "",
      status: statuses[Math.floor(next() * statuses.length)]!,
      source: [null, "api", "web"][i % 3] ?? null,
      created: created.toISOString(),
      predictTime: metered ? predictTime : null,
      totalTime: metered ? predictTime + 0.25 : null,
      inputTokens: i % 2 ? Math.floor(next() * 900) : null,
      outputTokens: i % 2 ? Math.floor(next() * 400) : null,
    };
  });
}

/** An exact decimal as text, without trailing zeros (numeric(20,6) columns print six decimals, sums of ledger rows fewer). */
const exact = (sql: string) => `trim_scale((${sql})::numeric)::text`;
const sums = MEASURES.map((m) => `${exact(`sum(${m})`)} AS ${m}`).join(", ");

beforeAll(async () => {
  database = await createEmptyDatabase();
  migrate("test/support/migrate-until.ts", MIGRATION);
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(
    `INSERT INTO connections (id, workspace_id, status, updated_at) VALUES ($1, 'ws-m', 'connected', now()), ($2, 'ws-m', 'disconnected', now())`,
    [A, B],
  );
  const rows = [
    ...ledgerRows(A, HELD, 400, 1),
    ...ledgerRows(A, PARTLY, 300, 2),
    ...ledgerRows(B, HELD, 150, 3),
    ...ledgerRows(A, PRUNED, 200, 4),
  ];
  const col = <K extends keyof (typeof rows)[number]>(k: K) => rows.map((r) => r[k]);
  await client.query(
    `INSERT INTO prediction_records (connection_id, prediction_id, usage_date, model, deployment, status, source, created_at, predict_time,
                                     total_time, input_tokens, output_tokens)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                          $9::float8[], $10::float8[], $11::bigint[], $12::bigint[])`,
    [
      col("connection"),
      col("id"),
      col("day"),
      col("model"),
      col("deployment"),
      col("status"),
      col("source"),
      col("created"),
      col("predictTime"),
      col("totalTime"),
      col("inputTokens"),
      col("outputTokens"),
    ],
  );
  // daily_usage as the old write left it: a GROUP BY over the ledger per UTC day.
  await client.query(
    `INSERT INTO daily_usage (connection_id, workspace_id, usage_date, model, deployment, source, ${MEASURES.join(", ")}, updated_at)
     SELECT connection_id, 'ws-m', usage_date, model, deployment, coalesce(source, ''), count(*),
       count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'canceled'),
       count(*) FILTER (WHERE status = 'aborted'), count(*) FILTER (WHERE status IN ('starting', 'processing')),
       count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'canceled', 'aborted', 'starting', 'processing')),
       coalesce(sum(round(predict_time::numeric, 6)), 0), coalesce(sum(round(total_time::numeric, 6)), 0), count(predict_time),
       coalesce(sum(round(predict_time::numeric, 6)) FILTER (WHERE status <> 'aborted'), 0),
       coalesce(sum(input_tokens) FILTER (WHERE status <> 'aborted'), 0), coalesce(sum(output_tokens) FILTER (WHERE status <> 'aborted'), 0),
       '2026-03-09T00:00:00Z'
     FROM prediction_records GROUP BY 1, 2, 3, 4, 5, 6`,
  );
  // Then the prune job: the whole of one day and the terminal predictions of part of another leave the ledger.
  await client.query(`DELETE FROM prediction_records WHERE usage_date = $1`, [PRUNED]);
  await client.query(
    `DELETE FROM prediction_records WHERE usage_date = $1 AND status IN ('succeeded', 'failed', 'canceled', 'aborted') AND created_at < $2`,
    [PARTLY, `${PARTLY}T13:00:00Z`],
  );
  before = (await client.query(`SELECT ${USAGE_KEY}, ${sums} FROM daily_usage GROUP BY ${USAGE_KEY} ORDER BY ${USAGE_KEY}`)).rows;
  ledgerSize = (await client.query(`SELECT count(*)::int AS n FROM prediction_records`)).rows[0].n;
  migrate("src/cli/migrate.ts");
}, 120_000);
afterAll(async () => {
  await client?.end();
  await database.drop();
});

test("the migration keeps every count: per connection, UTC day, model, deployment and source, each measure is unchanged", async () => {
  expect(before.length).toBeGreaterThan(30);
  const after = (
    await client.query(
      `SELECT connection_id, (bucket_start AT TIME ZONE 'UTC')::date AS usage_date, model, deployment, source, ${sums}
       FROM usage_buckets GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`,
    )
  ).rows;
  expect(after).toEqual(before);
  expect((await client.query(`SELECT count(*)::int AS n, bool_and(kind = 'prediction') AS p FROM prediction_records`)).rows[0]).toEqual({
    n: ledgerSize,
    p: true,
  });
  const tables = (await client.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).rows.map((r) => r.tablename);
  expect(tables).not.toContain("daily_usage");
});

test("days the ledger holds become its quarter hours; what it no longer holds stays one whole UTC day", async () => {
  const quarterHours = (where: string) =>
    client.query(
      `SELECT connection_id, bucket_start, model, deployment, source, ${sums} FROM usage_buckets WHERE bucket_minutes = 15 AND ${where}
       GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`,
    );
  const fromLedger = (where: string) =>
    client.query(
      `SELECT connection_id, date_bin('15 minutes', created_at, TIMESTAMPTZ '2000-01-01Z') AS bucket_start, model, deployment,
         coalesce(source, '') AS source,
         ${[
           ["count(*)", "predictions"],
           ["count(*) FILTER (WHERE status = 'succeeded')", "succeeded"],
           ["count(*) FILTER (WHERE status = 'failed')", "failed"],
           ["count(*) FILTER (WHERE status = 'canceled')", "canceled"],
           ["count(*) FILTER (WHERE status = 'aborted')", "aborted"],
           ["count(*) FILTER (WHERE status IN ('starting', 'processing'))", "in_progress"],
           ["count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed', 'canceled', 'aborted', 'starting', 'processing'))", "other"],
           ["coalesce(sum(round(predict_time::numeric, 6)), 0)", "compute_seconds"],
           ["coalesce(sum(round(total_time::numeric, 6)), 0)", "total_seconds"],
           ["count(predict_time)", "metered_predictions"],
           ["coalesce(sum(round(predict_time::numeric, 6)) FILTER (WHERE status <> 'aborted'), 0)", "billable_seconds"],
           ["coalesce(sum(input_tokens) FILTER (WHERE status <> 'aborted'), 0)", "input_tokens"],
           ["coalesce(sum(output_tokens) FILTER (WHERE status <> 'aborted'), 0)", "output_tokens"],
         ]
           .map(([sql, name]) => `${exact(sql!)} AS ${name}`)
           .join(", ")}
       FROM prediction_records WHERE ${where} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`,
    );
  const day = (d: string) => `(created_at AT TIME ZONE 'UTC')::date = '${d}'`;
  const bucketDay = (d: string) => `(bucket_start AT TIME ZONE 'UTC')::date = '${d}'`;
  for (const d of [HELD, PARTLY]) {
    const held = (await quarterHours(bucketDay(d))).rows;
    expect(held.length).toBeGreaterThan(50);
    expect(held).toEqual((await fromLedger(day(d))).rows);
  }
  const wholeDays = (
    await client.query(
      `SELECT to_char(bucket_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, bucket_start = date_trunc('day', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS midnight,
         count(*)::int AS rows
       FROM usage_buckets WHERE bucket_minutes = 1440 GROUP BY 1, 2 ORDER BY 1`,
    )
  ).rows;
  // The held day has none; the pruned day is only whole-day rows, the partly pruned one its remainder.
  expect(wholeDays.map((r) => [r.day, r.midnight])).toEqual([
    [PRUNED, true],
    [PARTLY, true],
  ]);
  expect((await quarterHours(bucketDay(PRUNED))).rows).toEqual([]);
  const partlyWhole = (
    await client.query(
      `SELECT sum(in_progress)::int AS p, sum(other)::int AS o FROM usage_buckets WHERE bucket_minutes = 1440 AND ${bucketDay(PARTLY)}`,
    )
  ).rows[0];
  // Only terminal predictions were pruned, so the remainder holds no unfinished one.
  expect(partlyWhole).toEqual({ p: 0, o: 0 });
});
