import type { Harness } from "./harness.js";
import { waitFor } from "./harness.js";
import { dumpRedis } from "./redis.js";
import { tokenFingerprint } from "../../src/vault.js";

/** Rows of the connection in each table an erasure deletes, counted in SQL (named as the audit event names them). */
export async function historyCounts(h: Harness, connectionId: string) {
  const [row] = await h.ctx.db.$queryRawUnsafe<{ ledgerRows: number; usageRows: number; deploymentReleases: number }[]>(
    `SELECT (SELECT count(*) FROM prediction_records WHERE connection_id = $1::uuid)::int AS "ledgerRows",
            (SELECT count(*) FROM usage_buckets WHERE connection_id = $1::uuid)::int AS "usageRows",
            (SELECT count(*) FROM deployments WHERE connection_id = $1::uuid)::int AS "deploymentReleases"`,
    connectionId,
  );
  return row!;
}

export const NOTHING = { ledgerRows: 0, usageRows: 0, deploymentReleases: 0 };

export function waitForErased(h: Harness, connectionId: string, timeoutMs = 60_000) {
  return waitFor(
    `connection ${connectionId} erased`,
    () => h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } }),
    (c) => c.erasedAt !== null,
    timeoutMs,
  );
}

/** The audit events and the webhooks they caused. */
export async function erasureAudit(h: Harness, connectionId: string) {
  const events = await h.ctx.db.integrationEvent.findMany({ where: { connectionId, kind: "history_erased" } });
  const webhooks = await h.ctx.db.webhookDelivery.findMany({ where: { connectionId, type: "connection.erased" } });
  return { events, webhooks };
}

/**
 * Every Redis key under the test's prefix (with its value: job data, scheduler, stream entries)
 * that names the connection or the pacing of its token. The erase queue's own event stream is the
 * one place left out: it records the erasure job itself, as the kept event log does.
 */
export async function redisTraces(h: Harness, connectionId: string, token: string): Promise<string[]> {
  const prefix = h.config.queuePrefix;
  const fingerprint = tokenFingerprint(token);
  return (await dumpRedis(h.ctx.redis, prefix))
    .split("\n")
    .filter((line) => !line.startsWith(`${prefix}:erase:events `))
    .filter((line) => line.includes(connectionId) || line.includes(fingerprint));
}
