import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDb, type Db } from "../src/db/client.js";

// Database helpers shared by the tests, the demo and the benchmarks. Every database one process
// makes is named after that process's test run (RUS_TEST_RUN), so two runs on one server never
// touch each other's databases.

export const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? "postgresql://postgres@127.0.0.1:5432/test";

/** The run id: set by the test runner's global set-up; other callers get their own. */
export const RUN_ID = (process.env.RUS_TEST_RUN ??= `${process.pid}x${randomBytes(2).toString("hex")}`);
/** The migrated template every test database of this run is cloned from (made by global-setup.mjs). */
const TEMPLATE_DB = `rus_tpl_${RUN_ID}`;

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const dropDatabase = (name: string) => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).then(() => undefined);

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  drop(): Promise<void>;
}

/** A fresh database per test file, cloned from this run's template. */
export async function createTestDatabase(poolSize = 10): Promise<TestDatabase> {
  const name = `rus_t_${RUN_ID}_${randomBytes(4).toString("hex")}`;
  // Two files cloning the same template at once can collide on its lock; retrying is enough.
  for (let attempt = 0; ; attempt++) {
    try {
      await adminQuery(`CREATE DATABASE "${name}" TEMPLATE "${TEMPLATE_DB}"`);
      break;
    } catch (err) {
      if (attempt >= 20 || !/being accessed by other users/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  const url = databaseUrl(name);
  const db = createDb(url, poolSize);
  return {
    name,
    url,
    db,
    async drop() {
      await db.$disconnect();
      await dropDatabase(name);
    },
  };
}

/** An empty database (no migrations), for testing the migrator itself. */
export async function createEmptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `rus_e_${RUN_ID}_${randomBytes(4).toString("hex")}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  return { url: databaseUrl(name), drop: () => dropDatabase(name) };
}

/**
 * A new database migrated by the real migration command. The command runs as a child process: the
 * wasm schema engine leaves timers behind in its process.
 */
export function createMigratedDatabase(prefix: string): { name: string; url: string; drop(): Promise<void> } {
  const name = `${prefix}_${RUN_ID}_${randomBytes(3).toString("hex")}`;
  const url = databaseUrl(name);
  execFileSync(process.execPath, ["--import", "tsx", "src/cli/migrate.ts"], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn", NODE_OPTIONS: "" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { name, url, drop: () => dropDatabase(name) };
}
