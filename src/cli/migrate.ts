import { applyMigrations } from "../db/schema-engine.js";
import { loadConfig } from "../config.js";
import { logger } from "../logger.js";

// `npm run db:migrate`: applies pending migrations offline (same bookkeeping as `prisma migrate deploy`).
const config = loadConfig();
const applied = await applyMigrations(config.databaseUrl);
logger.info(applied.length ? "migrations applied" : "database schema is up to date", { applied });
