import type { Db } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { utcDay } from "../domain/calendar.js";
import { WARNING_END_KINDS, WARNING_KINDS } from "../domain/event-kinds.js";
import { sqlList } from "../domain/prediction-status.js";
import { latestEvent, recordEvent, type NewEvent } from "./events.js";

/** The endpoint enrichment events about deployments name (detail.endpoint). */
export const DEPLOYMENTS_ENDPOINT = "/v1/deployments";

const LAST_ENRICHMENT = (connection: string) =>
  latestEvent([...WARNING_KINDS, ...WARNING_END_KINDS], "e.kind, e.occurred_at", `AND e.detail->>'endpoint' = '${DEPLOYMENTS_ENDPOINT}'`, {
    connection,
  });

/** SQL, true while the connection's deployments read is failing: its last warning-or-end event about them is a warning. */
export const deploymentsFailing = (connection: string) =>
  `coalesce((SELECT l.kind IN (${sqlList(WARNING_KINDS)}) FROM (${LAST_ENRICHMENT(connection)}) l), false)`;

/** Under the connection's row lock: writes `event` only if it opens or ends the streak, so two reads ending at once write one event. */
async function recordIfStreakTurns(tx: Prisma.TransactionClient, event: NewEvent): Promise<void> {
  const [row] = await tx.$queryRawUnsafe<{ failing: boolean }[]>(`SELECT ${deploymentsFailing("$1::uuid")} AS failing`, event.connectionId);
  if (row!.failing !== (event.kind === "enrichment_failed")) await recordEvent(tx, event);
}

/** Records a failed read (enrichment_failed) if it opens a streak. */
export async function recordDeploymentsEvent(db: Db, event: NewEvent): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.$queryRawUnsafe(`SELECT 1 FROM connections WHERE id = $1::uuid FOR UPDATE`, event.connectionId);
    await recordIfStreakTurns(tx, event);
  });
}

/**
 * Stores what GET /v1/deployments listed, and `recovered` if that ends a streak of failed reads, only
 * while connected (false otherwise): the row lock orders it with a disconnect and with other reads.
 */
export async function storeDeployments(
  db: Db,
  connectionId: string,
  deployments: Deployment[],
  now: Date,
  recovered: NewEvent,
): Promise<boolean> {
  const today = new Date(utcDay(now));
  const released = deployments.flatMap((d) => (d.current_release ? [{ name: `${d.owner}/${d.name}`, release: d.current_release }] : []));
  return db.$transaction(async (tx) => {
    const { count } = await tx.connection.updateMany({
      where: { id: connectionId, status: "connected" },
      data: { deploymentsCheckedAt: now },
    });
    if (count === 0) return false;
    await tx.deployment.createMany({
      data: released.map(({ name, release }) => ({
        connectionId,
        name,
        releaseNumber: release.number,
        model: release.model,
        version: release.version,
        hardware: release.configuration.hardware,
        minInstances: release.configuration.min_instances,
        maxInstances: release.configuration.max_instances,
        effectiveFrom: new Date(utcDay(release.created_at)),
        lastSeenOn: today,
      })),
      skipDuplicates: true,
    });
    await tx.deployment.updateMany({ where: { connectionId, name: { in: released.map((r) => r.name) } }, data: { lastSeenOn: today } });
    await recordIfStreakTurns(tx, recovered);
    return true;
  });
}

/** Each deployment's latest known release, of one connection or of a workspace. */
export async function currentDeployments(db: Db, scope: { connectionId?: string; workspaceId?: string }) {
  const rows = await db.deployment.findMany({
    where: { connectionId: scope.connectionId, connection: { workspaceId: scope.workspaceId, erasureRequestedAt: null } },
    orderBy: [{ connectionId: "asc" }, { name: "asc" }, { releaseNumber: "desc" }],
    distinct: ["connectionId", "name"],
  });
  return rows.map(({ effectiveFrom, lastSeenOn, ...d }) => ({
    ...d,
    effectiveFrom: utcDay(effectiveFrom),
    lastSeenOn: utcDay(lastSeenOn),
  }));
}

/** The deployments route's view; null when the connection does not exist. */
export async function connectionDeployments(db: Db, connectionId: string) {
  const row = await db.connection.findUnique({ where: { id: connectionId }, select: { deploymentsCheckedAt: true } });
  if (!row) return null;
  const deployments = (await currentDeployments(db, { connectionId })).map(({ connectionId: _c, ...d }) => d);
  return { checkedAt: row.deploymentsCheckedAt, deployments };
}
