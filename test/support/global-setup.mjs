// Migrates one template database per run with the real `db:migrate` command (in a child process, so
// the schema engine's handles never live in jest's process); every test file clones the template.
import { execFileSync } from "node:child_process";
import pg from "pg";

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const TEMPLATE_DB = "rus_test_template";

async function admin(sql) {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

export default async function globalSetup() {
  // Databases left by an interrupted earlier run.
  const { rows } = await admin("SELECT datname FROM pg_database WHERE datname ~ '^rus_(t|e)_[0-9a-f]+$'");
  for (const { datname } of rows) await admin(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  await admin(`DROP DATABASE IF EXISTS "${TEMPLATE_DB}" WITH (FORCE)`);
  await admin(`CREATE DATABASE "${TEMPLATE_DB}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${TEMPLATE_DB}`;
  execFileSync("node_modules/.bin/tsx", ["src/cli/migrate.ts"], {
    env: { ...process.env, DATABASE_URL: url.toString(), NODE_ENV: "test" },
    stdio: ["ignore", "ignore", "inherit"],
  });
}
