import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import pg from "pg";
import { createEmptyDatabase } from "../../dev/postgres.js";

const COMMITTED = readdirSync("prisma/migrations", { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

let database: Awaited<ReturnType<typeof createEmptyDatabase>>;

beforeAll(async () => {
  database = await createEmptyDatabase();
});
afterAll(() => database.drop());

/** Runs one of the project's CLI commands the way npm does; returns its exit code and JSON log lines. */
function cli(script: string, ...args: string[]): { status: number | null; logs: { message: string; [k: string]: unknown }[] } {
  const run = spawnSync("node_modules/.bin/tsx", [script, ...args], {
    env: { ...process.env, DATABASE_URL: database.url, NODE_ENV: "development" },
    encoding: "utf8",
  });
  const lines = `${run.stdout}\n${run.stderr}`.split("\n").filter((l) => l.startsWith("{"));
  return { status: run.status, logs: lines.map((l) => JSON.parse(l)) };
}

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

test("db:migrate applies to an empty database and a second run applies nothing", async () => {
  const first = cli("src/cli/migrate.ts");
  expect(first.status).toBe(0);
  expect(first.logs.at(-1)).toMatchObject({ message: "migrations applied", applied: COMMITTED });
  const tables = await query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
  expect(tables.map((t) => t.tablename)).toEqual(
    expect.arrayContaining([
      "_prisma_migrations",
      "connections",
      "integration_events",
      "usage_buckets",
      "workspace_settings",
      "prediction_records",
    ]),
  );

  const second = cli("src/cli/migrate.ts");
  expect(second.status).toBe(0);
  expect(second.logs.at(-1)).toMatchObject({ message: "database schema is up to date", applied: [] });
  expect(await query("SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL")).toHaveLength(COMMITTED.length);
});

test("committed migrations match schema.prisma (db:make-migration --check)", () => {
  const check = cli("src/cli/make-migration.ts", "--check");
  expect(check.logs).toEqual([]);
  expect(check.status).toBe(0);
});

test("the integration event log is append-only", async () => {
  await query("INSERT INTO connections (id, workspace_id, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'w', now())");
  await query(
    "INSERT INTO integration_events (connection_id, kind, level, message) VALUES ('00000000-0000-4000-8000-000000000001', 'connected', 'info', 'hi')",
  );
  await expect(query("UPDATE integration_events SET message = 'rewritten'")).rejects.toThrow(/append-only/);
  await expect(query("DELETE FROM integration_events")).rejects.toThrow(/append-only/);
});
