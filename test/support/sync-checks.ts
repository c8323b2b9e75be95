import type { Harness } from "./harness.js";
import { waitFor } from "./harness.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { actualUsage, expectedUsage } from "../../dev/predictions.js";

/** Waits until a run of the connection has finished after `since` (its lastSyncedAt moved past it). */
export function waitForSyncedSince(h: Harness, connectionId: string, since: Date | null, timeoutMs = 60_000) {
  return waitFor(
    `connection ${connectionId} synced`,
    () => h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } }),
    (c) => c.lastSyncedAt !== null && (since === null || c.lastSyncedAt > since),
    timeoutMs,
  );
}

/** Waits until the connection's deployments have been read: a run reads them beside its pages and does not wait for them. */
export function waitForDeploymentsRead(h: Harness, connectionId: string) {
  return waitFor(
    `deployments of ${connectionId} read`,
    () => h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } }),
    (c) => c.deploymentsCheckedAt !== null,
  );
}

/** Usage equals the ground truth, quarter hour by quarter hour, and the ledger holds each prediction exactly once. */
export async function expectExact(h: Harness, connectionId: string, truth: FakePrediction[]): Promise<void> {
  expect(await actualUsage(h.ctx.db, connectionId)).toEqual(expectedUsage(truth));
  expect(await h.ctx.db.predictionRecord.count({ where: { connectionId } })).toBe(new Set(truth.map((p) => p.id)).size);
}

export async function eventCounts(h: Harness, connectionId: string): Promise<Record<string, number>> {
  const rows = await h.ctx.db.integrationEvent.groupBy({ by: ["kind"], where: { connectionId }, _count: true });
  return Object.fromEntries(rows.map((r) => [r.kind, r._count]));
}

export async function checkpointPages(h: Harness, connectionId: string): Promise<number> {
  const row = await h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } });
  return (row.syncState as { pagesDone?: number } | null)?.pagesDone ?? 0;
}
