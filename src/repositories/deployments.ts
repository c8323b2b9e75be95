import type { Db } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { utcDay } from "../domain/calendar.js";
import { recordEvent, type NewEvent } from "./events.js";

/** The endpoint enrichment events about deployments name (detail.endpoint). */
export const DEPLOYMENTS_ENDPOINT = "/v1/deployments";

const lastEvent = (kind: "enrichment_failed" | "enrichment_recovered", connection: string) =>
  `coalesce((SELECT max(e.id) FROM integration_events e WHERE e.connection_id = ${connection} AND e.kind = '${kind}'
     AND e.detail->>'endpoint' = '${DEPLOYMENTS_ENDPOINT}'), 0)`;

/**
 * SQL, true while the connection's deployments read is failing: its last enrichment event about
 * them is an enrichment_failed (a connection's runs, and so its reads, follow one another).
 */
export const deploymentsFailing = (connection: string) =>
  `${lastEvent("enrichment_failed", connection)} > ${lastEvent("enrichment_recovered", connection)}`;

/** When the deployments were last read, and whether reading them is failing; null for an unknown connection. */
export async function deploymentsReadState(db: Db, connectionId: string): Promise<{ checkedAt: Date | null; failing: boolean } | null> {
  const [row] = await db.$queryRawUnsafe<{ checkedAt: Date | null; failing: boolean }[]>(
    `SELECT deployments_checked_at AS "checkedAt", ${deploymentsFailing("c.id")} AS failing FROM connections c WHERE c.id = $1::uuid`,
    connectionId,
  );
  return row ?? null;
}

/**
 * Writes an enrichment event about deployments unless the streak already is where it leads: the
 * first enrichment_failed opens a streak, the first enrichment_recovered ends it. The row lock is
 * taken first and the streak read in a statement of its own (which sees what committed while it
 * waited), so two reads ending at once write one event.
 */
async function recordStreakEvent(tx: Prisma.TransactionClient, event: NewEvent): Promise<void> {
  await tx.$queryRawUnsafe(`SELECT 1 FROM connections WHERE id = $1::uuid FOR UPDATE`, event.connectionId);
  const [row] = await tx.$queryRawUnsafe<{ failing: boolean }[]>(`SELECT ${deploymentsFailing("$1::uuid")} AS failing`, event.connectionId);
  if (row && row.failing !== (event.kind === "enrichment_failed")) await recordEvent(tx, event);
}

/** A failed read of the deployments: `event` (enrichment_failed) is written if it opens a streak. */
export async function recordDeploymentsFailure(db: Db, event: NewEvent): Promise<void> {
  await db.$transaction((tx) => recordStreakEvent(tx, event));
}

/**
 * Records what GET /v1/deployments listed on `now`'s day: a row per release not seen before (its
 * configuration applies from the day the release was created), today as the last day every listed
 * deployment was seen, and the check time; `recovered` (enrichment_recovered) if it ends a failure
 * streak. Deployments no longer listed keep their old last day.
 */
export async function storeDeployments(
  db: Db,
  connectionId: string,
  deployments: Deployment[],
  now: Date,
  recovered: NewEvent,
): Promise<void> {
  const today = new Date(utcDay(now));
  const released = deployments.flatMap((d) => (d.current_release ? [{ name: `${d.owner}/${d.name}`, release: d.current_release }] : []));
  await db.$transaction(async (tx) => {
    await recordStreakEvent(tx, recovered);
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
    await tx.connection.update({ where: { id: connectionId }, data: { deploymentsCheckedAt: now } });
  });
}

export interface DeploymentView {
  name: string;
  releaseNumber: number;
  model: string;
  version: string;
  hardware: string;
  minInstances: number;
  maxInstances: number;
  effectiveFrom: string;
  lastSeenOn: string;
}

/** Each deployment's latest known release, by connection and name: of one connection or of a workspace. */
export async function currentDeployments(
  db: Db,
  scope: { connectionId?: string; workspaceId?: string },
): Promise<(DeploymentView & { connectionId: string })[]> {
  const rows = await db.deployment.findMany({
    where: { connectionId: scope.connectionId, connection: { workspaceId: scope.workspaceId, erasureRequestedAt: null } },
    orderBy: [{ connectionId: "asc" }, { name: "asc" }, { releaseNumber: "desc" }],
    distinct: ["connectionId", "name"],
  });
  return rows.map((r) => ({
    connectionId: r.connectionId,
    name: r.name,
    releaseNumber: r.releaseNumber,
    model: r.model,
    version: r.version,
    hardware: r.hardware,
    minInstances: r.minInstances,
    maxInstances: r.maxInstances,
    effectiveFrom: utcDay(r.effectiveFrom),
    lastSeenOn: utcDay(r.lastSeenOn),
  }));
}

/** The deployments route's view; null when the connection does not exist. */
export async function connectionDeployments(
  db: Db,
  connectionId: string,
): Promise<{ checkedAt: Date | null; deployments: DeploymentView[] } | null> {
  const row = await db.connection.findUnique({ where: { id: connectionId }, select: { deploymentsCheckedAt: true } });
  if (!row) return null;
  const deployments = (await currentDeployments(db, { connectionId })).map(({ connectionId: _c, ...d }) => d);
  return { checkedAt: row.deploymentsCheckedAt, deployments };
}
