import pg from "pg";
import { applyMigrations } from "../../src/db/schema-engine.js";
import { pendingSchemaSql } from "../../src/db/migrations.js";
import { createEmptyDatabase } from "../support/postgres.js";

let database: Awaited<ReturnType<typeof createEmptyDatabase>>;

beforeAll(async () => {
  database = await createEmptyDatabase();
});
afterAll(() => database.drop());

async function tables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    return rows.map((r) => r.tablename);
  } finally {
    await client.end();
  }
}

test("migrations apply to an empty database and a second run applies nothing", async () => {
  const first = await applyMigrations(database.url);
  expect(first.length).toBeGreaterThan(0);
  expect(await tables(database.url)).toEqual(
    expect.arrayContaining(["_prisma_migrations", "connections", "daily_usage", "integration_events", "prediction_records"]),
  );
  expect(await applyMigrations(database.url)).toEqual([]);
});

test("committed migrations match schema.prisma (no pending schema change)", async () => {
  expect(await pendingSchemaSql(database.url)).toBe("");
});

test("the integration event log is append-only", async () => {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    await client.query("INSERT INTO connections (id, workspace_id, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'w', now())");
    await client.query(
      "INSERT INTO integration_events (connection_id, kind, level, message) VALUES ('00000000-0000-4000-8000-000000000001', 'connected', 'info', 'hi')",
    );
    await expect(client.query("UPDATE integration_events SET message = 'rewritten'")).rejects.toThrow(/append-only/);
    await expect(client.query("DELETE FROM integration_events")).rejects.toThrow(/append-only/);
  } finally {
    await client.end();
  }
});
