import { readFile, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { MIGRATIONS_DIR, SCHEMA_PATH, diffSchemas } from "./schema-engine.js";

// The wasm engine cannot build a shadow database, so the schema the committed migrations
// produce is kept beside them; a new migration is the diff from that snapshot to schema.prisma.
export const SNAPSHOT_PATH = path.join(MIGRATIONS_DIR, "schema.snapshot.prisma");

const readSnapshot = () =>
  readFile(SNAPSHOT_PATH, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });

/** SQL for the schema changes not yet in a migration; empty when the two agree. */
export async function pendingSchemaSql(databaseUrl: string): Promise<string> {
  const current = await readFile(SCHEMA_PATH, "utf8");
  const sql = await diffSchemas(databaseUrl, await readSnapshot(), current);
  return sql.replace(/^-- This is an empty migration\.\s*$/m, "").trim();
}

/** Writes prisma/migrations/<timestamp>_<name>/migration.sql; returns its folder, or null when nothing changed. */
export async function createMigration(databaseUrl: string, name: string, now = new Date()): Promise<string | null> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`migration name must be snake_case letters and digits, got "${name}"`);
  const sql = await pendingSchemaSql(databaseUrl);
  if (sql === "") return null;
  const stamp = now.toISOString().replace(/\D/g, "").slice(0, 14);
  const folder = path.join(MIGRATIONS_DIR, `${stamp}_${name}`);
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, "migration.sql"), `${sql}\n`);
  await writeFile(SNAPSHOT_PATH, await readFile(SCHEMA_PATH, "utf8"));
  await writeFile(path.join(MIGRATIONS_DIR, "migration_lock.toml"), 'provider = "postgresql"\n');
  return folder;
}
