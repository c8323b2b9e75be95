import { parseDatabaseUrl } from "../config.js";
import { createMigration, pendingSchemaSql } from "../db/migrations.js";
import { logger } from "../logger.js";

// `npm run db:make-migration -- <name>` writes the SQL for schema.prisma changes as a new migration;
// `npm run db:make-migration -- --check` exits 1 when schema.prisma has changes no migration holds.
const arg = process.argv[2];
const databaseUrl = parseDatabaseUrl(process.env);
if (arg === "--check") {
  const sql = await pendingSchemaSql(databaseUrl);
  if (sql) logger.error("schema.prisma has changes without a migration", { sql });
  process.exitCode = sql ? 1 : 0;
} else if (!arg) {
  logger.error("usage: npm run db:make-migration -- <snake_case_name> | --check");
  process.exitCode = 2;
} else {
  const folder = await createMigration(databaseUrl, arg);
  logger.info(folder ? "migration written; review it, then run npm run db:migrate" : "schema.prisma has no changes", { folder });
}
