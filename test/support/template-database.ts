import { applyMigrations } from "../../src/db/schema-engine.js";
import { TEMPLATE_DB, adminQuery, databaseUrl } from "./postgres.js";

// Migrates one template database per run; every test file clones it (CREATE DATABASE … TEMPLATE).
export async function migrateTemplateDatabase(): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS "${TEMPLATE_DB}" WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE "${TEMPLATE_DB}"`);
  await applyMigrations(databaseUrl(TEMPLATE_DB));
}
