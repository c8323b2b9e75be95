import { dropDatabases } from "./global-setup.mjs";

/** Drops every database this run made (template included); other runs' databases are left alone. */
export default async function globalTeardown() {
  const runId = process.env.RUS_TEST_RUN;
  await dropDatabases((_pid, name) => runId !== undefined && name.includes(`_${runId}`));
}
