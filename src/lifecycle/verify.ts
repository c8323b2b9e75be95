import type { AppContext } from "../context.js";
import { describeAccount } from "../domain/account.js";
import { moduleLogger } from "../logger.js";
import { markConnected, requireConnection, storedToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";

/**
 * Checks the token against GET /v1/account, records whose account it is, marks the connection
 * connected, and starts recurring syncs plus the initial backfill. "gone" when there is no token;
 * "paused" when the account already counts in the workspace through another connection, or is not
 * the account the connection has synced.
 */
export async function verifyConnection(ctx: AppContext, connectionId: string, jobId?: string): Promise<"verified" | "paused" | "gone"> {
  const stored = await storedToken(ctx.db, ctx.vault, connectionId);
  if (!stored) return "gone";
  const account = await ctx.replicate.getAccount(stored.token, connectionId);
  // Only the token just checked, and only while pending: a replace or disconnect meanwhile wins.
  const outcome = await markConnected(ctx.db, connectionId, stored.ciphertext, account);
  if (outcome === "gone") return "gone";
  if (outcome !== "connected") {
    const why = "duplicateOf" in outcome ? "account already connected in the workspace" : "token of another account than the connection's";
    moduleLogger("verify", { connectionId, jobId }).info(why, outcome);
    return "paused";
  }
  await recordEvent(ctx.db, {
    connectionId,
    jobId,
    kind: "verified",
    level: "info",
    message: `token verified for ${describeAccount(account)}`,
    detail: { accountType: account.type, username: account.username },
  });
  await ctx.queues.upsertScheduler(connectionId);
  // A disconnect that landed while the scheduler was being created must not leave it behind.
  if ((await requireConnection(ctx.db, connectionId)).status !== "connected") {
    await ctx.queues.removeScheduler(connectionId);
    return "gone";
  }
  await ctx.queues.kickSync(connectionId);
  moduleLogger("verify", { connectionId, jobId }).info("connection verified", { accountType: account.type });
  return "verified";
}
