// Migrates one template database per test run with the real `db:migrate` command (in a child
// process, so the schema engine's handles never live in jest's process); every test file clones it.
// Each run's databases carry its run id (<pid>x<random>), so a run only ever drops its own, plus
// those of earlier runs whose process is gone (interrupted runs): two runs on one server coexist.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const OWNED = /^rus_[a-z]+_(\d+)x[0-9a-f]{4}(_|$)/;

export async function admin(sql, params = []) {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** Drops the databases `owned(runPid, name)` selects. */
export async function dropDatabases(owned) {
  const rows = await admin("SELECT datname FROM pg_database WHERE datname LIKE 'rus\\_%'");
  for (const { datname } of rows) {
    const match = OWNED.exec(datname);
    if (match && owned(Number(match[1]), datname)) await admin(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  }
}

export default async function globalSetup() {
  const runId = `${process.pid}x${randomBytes(2).toString("hex")}`;
  // Workers inherit the environment: dev/postgres.ts names every database of this run after it.
  process.env.RUS_TEST_RUN = runId;
  await dropDatabases((pid) => pid !== process.pid && !alive(pid));
  const template = `rus_tpl_${runId}`;
  await admin(`CREATE DATABASE "${template}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${template}`;
  execFileSync("node_modules/.bin/tsx", ["src/cli/migrate.ts"], {
    env: { ...process.env, DATABASE_URL: url.toString(), NODE_ENV: "test" },
    stdio: ["ignore", "ignore", "inherit"],
  });
}
