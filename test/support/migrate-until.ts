import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { MIGRATIONS_DIR, applyMigrations } from "../../src/db/schema-engine.js";

// `node --import tsx test/support/migrate-until.ts <migration>` with DATABASE_URL: applies the
// committed migrations that sort before <migration>, so a test can seed data in the shape the schema
// had then and run the real migration over it. A child process: the wasm engine leaves timers behind.

const stop = process.argv[2];
if (!stop) throw new Error("usage: migrate-until.ts <migration folder name>");
const dir = await mkdtemp(path.join(os.tmpdir(), "rus-migrations-"));
try {
  for (const entry of await readdir(MIGRATIONS_DIR, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name >= stop) continue;
    await cp(path.join(MIGRATIONS_DIR, entry.name), path.join(dir, entry.name), { recursive: true });
  }
  await applyMigrations(process.env.DATABASE_URL!, dir);
} finally {
  await rm(dir, { recursive: true, force: true });
}
