import { createMigration } from "../db/migrations.js";
import { loadConfig } from "../config.js";
import { logger } from "../logger.js";

// `npm run db:make-migration -- <name>`: writes the SQL for schema.prisma changes as a new migration.
const name = process.argv[2];
if (!name) {
  logger.error("usage: npm run db:make-migration -- <snake_case_name>");
  process.exit(2);
}
const folder = await createMigration(loadConfig().databaseUrl, name);
logger.info(folder ? "migration written; review it, then run npm run db:migrate" : "schema.prisma has no changes", { folder });
