import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { idsWithStatus } from "../repositories/connections.js";
import { resumeErasures } from "./erase.js";

const log = moduleLogger("reconcile");

/**
 * Makes Redis agree with Postgres: a scheduler per connected connection, a tick for each whose
 * scheduler was rebuilt (its slice jobs went with Redis's data), a verify job for each pending one without.
 */
export async function reconcile(ctx: AppContext): Promise<{ added: number; removed: number; verifiesQueued: number }> {
  const connected = await idsWithStatus(ctx.db, "connected");
  const { added, removed } = await ctx.queues.reconcileSchedulers(connected);
  for (const id of added) await ctx.queues.enqueue("tick", { connectionId: id });
  const waiting = await ctx.queues.connectionsAwaitingVerify();
  const unverified = (await idsWithStatus(ctx.db, "pending")).filter((id) => !waiting.has(id));
  for (const id of unverified) await ctx.queues.enqueue("verify", { connectionId: id });
  await resumeErasures(ctx);
  if (added.length || removed || unverified.length) {
    log.warn("Redis was missing work Postgres knows about; rebuilt", { added: added.length, removed, verifiesQueued: unverified.length });
  }
  return { added: added.length, removed, verifiesQueued: unverified.length };
}
