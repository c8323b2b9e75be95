import type { Db } from "../db/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { utcDay } from "../domain/calendar.js";

/** When the connection's deployments were last read; null when never (or the connection is gone). */
export async function deploymentsCheckedAt(db: Db, connectionId: string): Promise<Date | null> {
  const row = await db.connection.findUnique({ where: { id: connectionId }, select: { deploymentsCheckedAt: true } });
  return row?.deploymentsCheckedAt ?? null;
}

/**
 * Records what GET /v1/deployments listed on `now`'s day: a row per release not seen before (its
 * configuration applies from the day the release was created), today as the last day every listed
 * deployment was seen, and the check time. Deployments no longer listed keep their old last day.
 */
export async function storeDeployments(db: Db, connectionId: string, deployments: Deployment[], now: Date): Promise<void> {
  const today = new Date(utcDay(now));
  const released = deployments.flatMap((d) => (d.current_release ? [{ name: `${d.owner}/${d.name}`, release: d.current_release }] : []));
  await db.$transaction([
    db.deployment.createMany({
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
    }),
    db.deployment.updateMany({ where: { connectionId, name: { in: released.map((r) => r.name) } }, data: { lastSeenOn: today } }),
    db.connection.update({ where: { id: connectionId }, data: { deploymentsCheckedAt: now } }),
  ]);
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
