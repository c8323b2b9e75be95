import { parseDatabaseUrl } from "../config.js";
import { applyMigrations, ensureDatabase } from "../db/schema-engine.js";
import { logger } from "../logger.js";

// `npm run db:migrate`: creates the database if needed and applies pending migrations offline (bookkeeping as `prisma migrate deploy`).
const databaseUrl = parseDatabaseUrl(process.env);
if (await ensureDatabase(databaseUrl)) logger.info("database created", { database: new URL(databaseUrl).pathname.slice(1) });
const applied = await applyMigrations(databaseUrl);
logger.info(applied.length ? "migrations applied" : "database schema is up to date", { applied });
