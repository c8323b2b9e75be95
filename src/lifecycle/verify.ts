import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { refreshDeployments } from "../pricing/deployments.js";
import { readToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { upsertSyncScheduler } from "../queue/schedulers.js";
import { kickSync } from "./sync-step.js";

/**
 * Checks the token against GET /v1/account, records whose account it is, marks the connection
 * connected, and starts recurring syncs plus the initial backfill. "gone" when there is no token.
 */
export async function verifyConnection(ctx: AppContext, connectionId: string, jobId?: string): Promise<"verified" | "gone"> {
  const token = await readToken(ctx.db, ctx.vault, connectionId);
  if (!token) return "gone";
  const account = await ctx.replicate.getAccount(token);
  await refreshDeployments(ctx, connectionId, token, { force: true, deferWhenThrottled: true });
  const { count } = await ctx.db.connection.updateMany({
    where: { id: connectionId, status: { not: "disconnected" } },
    data: { status: "connected", accountUsername: account.username, accountType: account.type, verifiedAt: new Date() },
  });
  if (count === 0) return "gone";
  await recordEvent(ctx.db, {
    connectionId,
    jobId,
    kind: "verified",
    level: "info",
    message: `token verified for Replicate ${account.type} "${account.username}"`,
    detail: { accountType: account.type, username: account.username },
  });
  await upsertSyncScheduler(ctx.queues, connectionId, ctx.config.sync.intervalMinutes);
  await kickSync(ctx, connectionId);
  moduleLogger("verify", { connectionId, jobId }).info("connection verified", { accountType: account.type });
  return "verified";
}
