import * as producer from "../../src/producer.js";
import { queryUsage } from "../../src/repositories/usage-query.js";
import { generatePredictions } from "../../dev/predictions.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { eventCounts, expectExact, waitForSyncedSince } from "../support/sync-checks.js";

// One Replicate account counts once per workspace: a second connection of the same account in the
// same workspace is paused as a duplicate, and one that connects after a disconnect continues the
// disconnected one's history, so the workspace's usage equals the account's.

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const ACCOUNT = { type: "organization", username: "twice-co" } as const;
const truth = generatePredictions({ count: 260, days: 10, seed: 41, idPrefix: "dup" });
const tokens = ["r8_duplicateFirst0000000000", "r8_duplicateSecond000000000", "r8_duplicateOtherWs00000000"];

const status = (id: string) => h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const verified = (id: string) =>
  waitFor(
    `connection ${id} verified`,
    () => status(id),
    (c) => c.status !== "pending",
  );

async function workspaceTotal(workspaceId: string): Promise<number> {
  const [row] = (await queryUsage(h.ctx.db.pool, { workspaceId, from: "2000-01-01", to: "2100-01-01", timeZone: "UTC", groupBy: [] })).rows;
  return row?.predictions ?? 0;
}

test("a second connection of the same account in a workspace is a duplicate; totals equal the account's", async () => {
  for (const token of tokens) h.fake.addAccount(token, ACCOUNT, truth);
  const first = await producer.connect(h.ctx, { workspaceId: "ws-dup", token: tokens[0]! });
  await waitForSyncedSince(h, first.id, null);

  const second = await producer.connect(h.ctx, { workspaceId: "ws-dup", token: tokens[1]! });
  expect(await verified(second.id)).toMatchObject({ status: "credential_error", duplicateOf: first.id, lastSyncedAt: null });
  const event = await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: second.id, kind: "duplicate_account" } });
  expect(event.detail).toMatchObject({ duplicateOf: first.id, username: "twice-co" });
  const health = (await producer.getConnection(h.ctx, second.id)).health;
  expect(health.state).toBe("action_required");
  expect(health.message).toContain(first.id);
  expect(health.action).toContain(first.id);
  expect(health.lastError?.kind).toBe("duplicate_account");

  // Nothing was read for the duplicate, and a sync now is refused, so the workspace counts the account once.
  await expect(producer.syncNow(h.ctx, second.id)).rejects.toThrow(/credential_error/);
  expect(await workspaceTotal("ws-dup")).toBe(truth.length);

  // Another workspace may connect the same account.
  const elsewhere = await producer.connect(h.ctx, { workspaceId: "ws-dup-other", token: tokens[2]! });
  await waitForSyncedSince(h, elsewhere.id, null);
  expect(await workspaceTotal("ws-dup-other")).toBe(truth.length);
  expect(await workspaceTotal("ws-dup")).toBe(truth.length);

  // Disconnecting the holder and pasting the token again moves the account to the second connection.
  await producer.disconnect(h.ctx, first.id);
  await producer.replaceToken(h.ctx, second.id, tokens[1]!);
  expect(await verified(second.id)).toMatchObject({ status: "connected", duplicateOf: null, accountUsername: "twice-co" });
  await waitForSyncedSince(h, second.id, null);
  expect(await workspaceTotal("ws-dup")).toBe(truth.length);
  await expectExact(h, second.id, truth);
});

test("reconnecting an account after a disconnect continues its history: each prediction counts once in the workspace", async () => {
  const account = { type: "organization", username: "again-co" } as const;
  const history = generatePredictions({ count: 300, days: 10, seed: 43, idPrefix: "again" });
  const [before, after] = ["r8_reconnectBefore000000000", "r8_reconnectAfter0000000000"];
  for (const token of [before, after]) h.fake.addAccount(token, account, history);
  const first = await producer.connect(h.ctx, { workspaceId: "ws-again", token: before });
  await waitForSyncedSince(h, first.id, null);
  await expectExact(h, first.id, history);
  await producer.disconnect(h.ctx, first.id);

  // While disconnected, the account goes on: what was running finishes, and there is new usage.
  const finished = history.filter((p) => p.status === "starting" || p.status === "processing").map((p) => ({ ...p, status: "succeeded" }));
  const later = generatePredictions({ count: 40, days: 1, seed: 44, idPrefix: "later" });
  expect(finished.length).toBeGreaterThan(0);
  h.fake.upsertPredictions(after, [...finished, ...later]);

  const second = await producer.connect(h.ctx, { workspaceId: "ws-again", token: after });
  await waitForSyncedSince(h, second.id, null);
  const now = h.fake.predictions(after);
  expect(await workspaceTotal("ws-again")).toBe(now.length);
  await expectExact(h, second.id, now);
  expect(await h.ctx.db.usageBucket.count({ where: { connectionId: first.id } })).toBe(0);
  const moved = await h.ctx.db.integrationEvent.findMany({
    where: { kind: "history_moved", connectionId: { in: [first.id, second.id] } },
    orderBy: { id: "asc" },
  });
  expect(moved.map((e) => [e.connectionId, e.detail])).toEqual([
    [first.id, expect.objectContaining({ from: first.id, to: second.id, predictions: history.length })],
    [second.id, expect.objectContaining({ from: first.id, to: second.id, predictions: history.length })],
  ]);
  expect(await eventCounts(h, second.id)).toMatchObject({ sync_completed: 1 });
});

test("two connections of one account verified at the same time: exactly one connects", async () => {
  const account = { type: "user", username: "racer" } as const;
  const raced = ["r8_racingAlpha00000000000", "r8_racingBravo00000000000", "r8_racingCharlie000000000", "r8_racingDelta00000000000"];
  for (const token of raced) h.fake.addAccount(token, account, truth.slice(0, 30));
  const ids = await Promise.all(raced.map((token) => producer.connect(h.ctx, { workspaceId: "ws-race", token }).then((c) => c.id)));
  const rows = await Promise.all(ids.map(verified));
  const connected = rows.filter((r) => r.status === "connected");
  expect(connected).toHaveLength(1);
  for (const r of rows.filter((r) => r.status !== "connected")) {
    expect(r).toMatchObject({ status: "credential_error", duplicateOf: connected[0]!.id });
  }
  await waitForSyncedSince(h, connected[0]!.id, null);
  expect(await workspaceTotal("ws-race")).toBe(30);
});

test("a token of another Replicate account pasted into a connection is refused: its history stays one account's", async () => {
  const a = { type: "organization", username: "kept-co" } as const;
  const ofA = generatePredictions({ count: 120, days: 5, seed: 45, idPrefix: "kept" });
  const [tokenA, tokenB, tokenA2] = ["r8_keptFirstA00000000000", "r8_keptOtherB00000000000", "r8_keptAgainA00000000000"];
  for (const token of [tokenA, tokenA2]) h.fake.addAccount(token, a, ofA);
  h.fake.addAccount(
    tokenB,
    { type: "user", username: "someone-else" },
    generatePredictions({ count: 50, days: 5, seed: 46, idPrefix: "other" }),
  );
  const x = await producer.connect(h.ctx, { workspaceId: "ws-kept", token: tokenA });
  const { lastSyncedAt } = await waitForSyncedSince(h, x.id, null);

  await producer.replaceToken(h.ctx, x.id, tokenB);
  expect(await verified(x.id)).toMatchObject({ status: "credential_error", accountUsername: "kept-co", accountType: "organization" });
  const event = await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: x.id, kind: "account_changed" } });
  expect(event.detail).toMatchObject({
    connected: { type: "organization", username: "kept-co" },
    pasted: { type: "user", username: "someone-else" },
  });
  const health = (await producer.getConnection(h.ctx, x.id)).health;
  expect(health).toMatchObject({ state: "action_required", lastError: expect.objectContaining({ kind: "account_changed" }) });
  expect(health.action).toMatch(/kept-co/);
  expect(h.fake.requests.filter((r) => r.authorization === `Bearer ${tokenB}` && r.endpoint === "predictions")).toEqual([]);
  expect(await workspaceTotal("ws-kept")).toBe(ofA.length);

  const webhookTypes = async () =>
    (await h.ctx.db.webhookDelivery.findMany({ where: { connectionId: x.id }, orderBy: { id: "asc" } })).map((w) => w.type);
  expect(await webhookTypes()).toEqual(["connection.verified", "backfill.completed", "connection.action_required"]);

  await producer.replaceToken(h.ctx, x.id, tokenA2); // a new token of the same account: resumes
  await waitForSyncedSince(h, x.id, lastSyncedAt);
  expect((await producer.getConnection(h.ctx, x.id)).health.state).toBe("healthy");
  expect(await webhookTypes()).toEqual(expect.arrayContaining(["connection.action_required", "connection.recovered"]));
  await expectExact(h, x.id, ofA);
});

test("history two disconnected connections both counted (before a reconnect took over history) is counted once by the next", async () => {
  const account = { type: "user", username: "twice-before" } as const;
  const history = generatePredictions({ count: 150, days: 6, seed: 47, idPrefix: "before" });
  const [older, newer] = ["r8_twiceBeforeOld0000000000", "r8_twiceBeforeNew0000000000"];
  for (const token of [older, newer]) h.fake.addAccount(token, account, history);
  const first = await producer.connect(h.ctx, { workspaceId: "ws-twice", token: older });
  await waitForSyncedSince(h, first.id, null);
  await producer.disconnect(h.ctx, first.id);
  // What an earlier release left: a second disconnected connection of the account holding the same
  // predictions (it backfilled them again), so the workspace counted them twice.
  const copy = await cloneConnection(first.id);
  expect(await workspaceTotal("ws-twice")).toBe(2 * history.length);

  const next = await producer.connect(h.ctx, { workspaceId: "ws-twice", token: newer });
  await waitForSyncedSince(h, next.id, null);
  expect(await workspaceTotal("ws-twice")).toBe(history.length);
  await expectExact(h, next.id, history);
  for (const id of [first.id, copy]) expect(await h.ctx.db.usageBucket.count({ where: { connectionId: id } })).toBe(0);
});

/** A disconnected copy of a connection with its ledger and usage, as two backfills of one account left them. */
async function cloneConnection(id: string): Promise<string> {
  const [row] = await h.ctx.db.$queryRawUnsafe<{ copy: string }[]>(
    `INSERT INTO connections (id, workspace_id, status, account_username, account_type, verified_at, created_at, updated_at)
     SELECT gen_random_uuid(), workspace_id, status, account_username, account_type, verified_at, created_at - interval '1 day', updated_at - interval '1 day'
     FROM connections WHERE id = $1::uuid RETURNING id AS copy`,
    id,
  );
  const copy = row!.copy;
  for (const table of ["prediction_records", "usage_buckets"]) {
    const columns = (
      await h.ctx.db.$queryRawUnsafe<{ c: string }[]>(
        `SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 AND column_name <> 'connection_id'`,
        table,
      )
    ).map((r) => r.c);
    await h.ctx.db.$executeRawUnsafe(
      `INSERT INTO ${table} (connection_id, ${columns.join(", ")}) SELECT $2::uuid, ${columns.join(", ")} FROM ${table} WHERE connection_id = $1::uuid`,
      id,
      copy,
    );
  }
  return copy;
}

test("a history of a million ledger rows moves in the transaction that connects (past Prisma's 5 s default)", async () => {
  const account = { type: "organization", username: "big-history" } as const;
  const token = "r8_bigHistoryToken000000000";
  h.fake.addAccount(token, account, generatePredictions({ count: 30, days: 2, seed: 48, idPrefix: "bignew" }));
  // What a long-lived, busy predecessor leaves: its ledger and the usage rows that sum it.
  const [row] = await h.ctx.db.$queryRawUnsafe<{ id: string }[]>(
    `INSERT INTO connections (id, workspace_id, status, account_username, account_type, updated_at)
     VALUES (gen_random_uuid(), 'ws-big', 'disconnected', $1, 'organization', now()) RETURNING id`,
    account.username,
  );
  const old = row!.id;
  await h.ctx.db.$executeRawUnsafe(
    `INSERT INTO prediction_records (connection_id, prediction_id, model, deployment, status, source, created_at, predict_time)
     SELECT $1::uuid, 'old' || g, 'acme/model-' || g % 4, '', 'succeeded', 'api',
            (current_date - 100 + g % 60)::timestamptz + (g % 96) * interval '15 minutes', 1.5
     FROM generate_series(1, 1000000) g`,
    old,
  );
  await h.ctx.db.$executeRawUnsafe(
    `INSERT INTO usage_buckets (connection_id, workspace_id, bucket_start, kind, model, deployment, source, predictions, succeeded, failed,
                                canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions, billable_seconds)
     SELECT connection_id, 'ws-big', created_at, kind, model, deployment, source, count(*), count(*), 0, 0, 0, 0, 0, sum(predict_time), 0,
            count(*), sum(predict_time)
     FROM prediction_records WHERE connection_id = $1::uuid GROUP BY 1, 2, 3, 4, 5, 6, 7`,
    old,
  );

  const next = await producer.connect(h.ctx, { workspaceId: "ws-big", token });
  await waitForSyncedSince(h, next.id, null, 120_000);
  expect(await workspaceTotal("ws-big")).toBe(1_000_030);
  const moved = await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: next.id, kind: "history_moved" } });
  expect(moved.detail).toMatchObject({ from: old, ledgerRows: 1_000_000, predictions: 1_000_000 });
}, 180_000);
