import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseDatabaseUrl } from "../config.js";
import { MIGRATIONS_DIR, SCHEMA_PATH, diffSchemas } from "../db/schema-engine.js";
import { logger } from "../logger.js";

// `npm run db:make-migration -- <name>` writes the SQL for schema.prisma changes as a new migration;
// `npm run db:make-migration -- --check` exits 1 when schema.prisma has changes no migration holds.
// The wasm engine cannot build a shadow database, so the schema the committed migrations produce is kept beside them: a new
// migration is the diff from that snapshot to schema.prisma.
const SNAPSHOT_PATH = path.join(MIGRATIONS_DIR, "schema.snapshot.prisma");
const arg = process.argv[2];
const databaseUrl = parseDatabaseUrl(process.env);
if (!arg) {
  logger.error("usage: npm run db:make-migration -- <snake_case_name> | --check");
  process.exitCode = 2;
} else {
  if (arg !== "--check" && !/^[a-z0-9_]+$/.test(arg)) throw new Error(`migration name must be snake_case letters and digits, got "${arg}"`);
  const schema = await readFile(SCHEMA_PATH, "utf8");
  const snapshot = await readFile(SNAPSHOT_PATH, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  const sql = (await diffSchemas(databaseUrl, snapshot, schema)).replace(/^-- This is an empty migration\.\s*$/m, "").trim();
  if (arg === "--check") {
    if (sql) logger.error("schema.prisma has changes without a migration", { sql });
    process.exitCode = sql ? 1 : 0;
  } else if (!sql) {
    logger.info("schema.prisma has no changes", { folder: null });
  } else {
    const folder = path.join(MIGRATIONS_DIR, `${new Date().toISOString().replace(/\D/g, "").slice(0, 14)}_${arg}`);
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, "migration.sql"), `${sql}\n`);
    await writeFile(SNAPSHOT_PATH, schema);
    await writeFile(path.join(MIGRATIONS_DIR, "migration_lock.toml"), 'provider = "postgresql"\n');
    logger.info("migration written; review it, then run npm run db:migrate", { folder });
  }
}
