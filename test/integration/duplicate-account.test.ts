import * as producer from "../../src/producer.js";
import { getConnectionView } from "../../src/repositories/connection-views.js";
import { queryUsage } from "../../src/repositories/usage-query.js";
import { generatePredictions } from "../../dev/predictions.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// One Replicate account counts once per workspace: a second connection of the same account in the
// same workspace is paused as a duplicate, so the workspace's usage equals the account's.

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
  const [row] = await queryUsage(h.ctx.db, { workspaceId, from: "2000-01-01", to: "2100-01-01", groupBy: [] });
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
  const health = (await getConnectionView(h.ctx.db, second.id))!.health;
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
