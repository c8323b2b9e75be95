import * as producer from "../../src/producer.js";
import { generatePredictions } from "../../dev/predictions.js";
import { connectSynced } from "../support/api.js";
import { createHarness, type Harness } from "../support/harness.js";
import { expectExact, waitForDeploymentsRead, waitForSyncedSince } from "../support/sync-checks.js";

// What a routine sync costs the database, by statement: a fleet of connections syncs every few
// minutes, mostly with one new page and no trainings, so every statement of it counts (issue 21).

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const SYNC_STATEMENTS = new Set(["read_run", "start_run", "deployments_read_state", "write_pages", "complete_run"]);

test("a sync without trainings whose deployments were read today is 4 statements: the empty trainings page closes its window in the completion", async () => {
  const predictions = generatePredictions({ count: 40, days: 1, seed: 21 });
  const { id } = await connectSynced(h, { name: "statements", predictions });
  await waitForDeploymentsRead(h, id);
  const { lastSyncedAt } = await h.ctx.db.connection.findUniqueOrThrow({ where: { id } });

  const statements: string[] = [];
  const pool = h.ctx.db.pool;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    const name = (args[0] as { name?: string } | undefined)?.name;
    if (name && SYNC_STATEMENTS.has(name)) statements.push(name);
    return query(...args);
  }) as typeof pool.query;
  try {
    await producer.syncNow(h.ctx, id);
    await waitForSyncedSince(h, id, lastSyncedAt);
  } finally {
    pool.query = query as typeof pool.query;
  }

  expect(statements).toEqual(["read_run", "start_run", "write_pages", "complete_run"]);
  await expectExact(h, id, predictions);
  const completed = await h.ctx.db.integrationEvent.findFirstOrThrow({
    where: { connectionId: id, kind: "sync_completed" },
    orderBy: { id: "desc" },
  });
  expect(completed.detail).toMatchObject({ trainings: 0, trainingPages: 1 });
});

test("a sync that reads predictions again unchanged rewrites no ledger row, and still refreshes the usage rows it read", async () => {
  const predictions = generatePredictions({ count: 60, days: 1, seed: 22 });
  const { id } = await connectSynced(h, { name: "replays", predictions });
  const ledger = () =>
    h.ctx.db.pool.query<{ id: string; version: string }>(
      "SELECT prediction_id AS id, xmin::text AS version FROM prediction_records WHERE connection_id = $1::uuid ORDER BY 1",
      [id],
    );
  const refreshed = async () => {
    const today = new Date().toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const { rows } = await producer.queryUsage(h.ctx, { connectionId: id, from: yesterday, to: today, groupBy: ["date", "model"] });
    return rows.map((r) => Date.parse(r.refreshedAt!));
  };
  const before = (await ledger()).rows;
  expect(before).toHaveLength(60);
  const { lastSyncedAt } = await h.ctx.db.connection.findUniqueOrThrow({ where: { id } });

  await producer.syncNow(h.ctx, id);
  const second = await waitForSyncedSince(h, id, lastSyncedAt);

  // The run read the same 60 predictions: every ledger row is the version the first run wrote.
  expect((await ledger()).rows).toEqual(before);
  const read = await refreshed();
  expect(read.length).toBeGreaterThan(0);
  for (const at of read) expect(at).toBeGreaterThanOrEqual(second.lastSyncStartedAt!.getTime());
  await expectExact(h, id, predictions);
});
