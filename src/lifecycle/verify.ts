import type { AppContext } from "../context.js";
import type { Db } from "../db/client.js";
import { describeAccount } from "../domain/account.js";
import { moduleLogger } from "../logger.js";
import type { Account } from "../replicate/schemas.js";
import { accountHolder, connectAccount, markCredentialError, requireConnection, storedToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";

/** Checks the token (GET /v1/account), connects the account and starts its syncs; "paused": a duplicate, or another account. */
export async function verifyConnection(ctx: AppContext, connectionId: string, jobId?: string): Promise<"verified" | "paused" | "gone"> {
  const stored = await storedToken(ctx.db, ctx.vault, connectionId);
  if (!stored) return "gone";
  const account = await ctx.replicate.getAccount(stored.token, connectionId);
  // Only the token just checked, and only while pending: a replace or disconnect meanwhile wins.
  const outcome = await connect(ctx.db, connectionId, stored.ciphertext, account, jobId);
  if (outcome !== "verified") return outcome;
  await recordEvent(ctx.db, {
    connectionId,
    jobId,
    kind: "verified",
    message: `token verified for ${describeAccount(account)}`,
    detail: { accountType: account.type, username: account.username },
  });
  // The tick first: a retry after a crash finds the connection connected and stops before both, and
  // the reconciler restores a missing scheduler with a tick of its own, never a missing tick alone.
  await ctx.queues.enqueue("tick", { connectionId });
  await ctx.queues.upsertScheduler(connectionId);
  // A disconnect that landed while the scheduler was being created must not leave it behind.
  if ((await requireConnection(ctx.db, connectionId)).status !== "connected") {
    await ctx.queues.removeScheduler(connectionId);
    return "gone";
  }
  moduleLogger("verify", { connectionId, jobId }).info("connection verified", { accountType: account.type });
  return "verified";
}

/** Connects the verified account, or pauses the connection with the event that says why. */
async function connect(db: Db, id: string, ciphertext: string, account: Account, jobId?: string): Promise<"verified" | "paused" | "gone"> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const outcome = await connectAccount(db, id, ciphertext, account);
    if (outcome === "connected") return "verified";
    if (outcome === "gone") return "gone";
    const holder = outcome === "duplicate" ? await accountHolder(db, id, account) : null;
    // The holder may have been disconnected since the unique index refused: then connecting is tried again.
    if (outcome === "duplicate" && holder === null) continue;
    const pause = {
      connectionId: id,
      jobId,
      ...(outcome === "duplicate"
        ? {
            kind: "duplicate_account" as const,
            message: `${describeAccount(account)} is already connected in this workspace as connection ${holder}; this connection does not sync, so its usage is not counted twice`,
            detail: { duplicateOf: holder, accountType: account.type, username: account.username },
          }
        : {
            kind: "account_changed" as const,
            message: `the new token belongs to ${describeAccount(account)}, but this connection syncs ${describeAccount(outcome.syncs)}; it was not used, so the usage history stays one account's`,
            detail: { connected: outcome.syncs, pasted: account },
          }),
    };
    moduleLogger("verify", { connectionId: id, jobId }).info("connection paused at verification", { kind: pause.kind });
    return (await markCredentialError(db, id, pause, ciphertext, holder)) ? "paused" : "gone";
  }
  throw new Error("the account's holder in the workspace kept changing while connecting; verification retries");
}
