import { randomBytes } from "node:crypto";
import pg from "pg";
import { RUN_ID } from "../dev/postgres.js";
import { applyMigrations } from "../src/db/schema-engine.js";

// The demo's own database, made through whichever maintenance database this server has (installs
// differ: `postgres`, `template1`, or a test one), so a missing one cannot strand the demo.

const SERVER = process.env.TEST_DATABASE_ADMIN_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

function onDatabase(name: string): string {
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const problems: string[] = [];
  for (const name of new Set([new URL(SERVER).pathname.slice(1), "postgres", "template1"])) {
    const client = new pg.Client({ connectionString: onDatabase(name) });
    try {
      await client.connect();
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
      await client.end().catch(() => undefined);
      continue;
    }
    try {
      return await use(client);
    } finally {
      await client.end();
    }
  }
  throw new Error(`no maintenance database to connect to (${problems.join("; ")})`);
}

export interface DemoDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates and migrates `rus_demo_<run>_<hex>`. The database is handed to `register` before it is
 * created, so the caller's clean-up drops it whatever fails or interrupts after; a drop waits for
 * a CREATE still under way, so an interrupted one leaves nothing behind either.
 */
export async function createDemoDatabase(register: (db: DemoDatabase) => void): Promise<DemoDatabase> {
  const name = `rus_demo_${RUN_ID}_${randomBytes(3).toString("hex")}`;
  // template0: template1 may be the maintenance database this very client is connected to.
  const created = withAdmin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE template0`));
  const database = {
    name,
    url: onDatabase(name),
    async drop() {
      await created.catch(() => undefined);
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
  register(database);
  await created;
  await applyMigrations(database.url);
  return database;
}
