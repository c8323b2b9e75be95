import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDb, type Db } from "../../src/db/client.js";

export const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
export const TEMPLATE_DB = "rus_test_template"; // created by global-setup.mjs

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  drop(): Promise<void>;
}

/** A fresh database per test file, cloned from the template the global set-up migrated. */
export async function createTestDatabase(poolSize = 10): Promise<TestDatabase> {
  const name = `rus_t_${randomBytes(6).toString("hex")}`;
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
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

/** An empty database (no migrations), for testing the migrator itself. */
export async function createEmptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `rus_e_${randomBytes(6).toString("hex")}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  return { url: databaseUrl(name), drop: () => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

/**
 * A new database migrated by the real migration command, for the benchmarks and the demo. The
 * command runs as a child process: the wasm schema engine leaves timers behind in its process.
 */
export function createMigratedDatabase(prefix: string): { name: string; url: string; drop(): Promise<void> } {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`;
  const url = databaseUrl(name);
  execFileSync(process.execPath, ["--import", "tsx", "src/cli/migrate.ts"], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn" },
    stdio: "inherit",
  });
  return { name, url, drop: () => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}
