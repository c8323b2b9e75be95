import type { AppContext } from "../context.js";
import { moduleLogger } from "../logger.js";
import { VaultError } from "../errors.js";
import { idsWithStatus, markTokenReadable, unreadableTokens } from "../repositories/connections.js";
import { idleRuns } from "../repositories/runs.js";
import { resumeErasures } from "./erase.js";

const log = moduleLogger("reconcile");

/**
 * Makes Redis agree with Postgres: a scheduler per connected connection; a tick for each whose
 * scheduler was rebuilt (its slice jobs went with Redis's data) or whose run has written nothing for
 * two lock periods; a verify job for each pending one without, and for each paused because its token
 * could not be decrypted once it decrypts again (its key was restored). A run's job can be gone with
 * Redis up too (BullMQ fails a job that stalled too often, without our failure policy): the tick
 * makes sure each open window has its job, a no-op while they are there.
 */
export async function reconcile(ctx: AppContext): Promise<{ added: number; removed: number; verifiesQueued: number }> {
  const connected = await idsWithStatus(ctx.db, "connected");
  const { added, removed } = await ctx.queues.reconcileSchedulers(connected);
  const idle = await idleRuns(ctx.db, 2 * ctx.config.jobs.lockMs);
  for (const id of new Set([...added, ...idle])) await ctx.queues.enqueue("tick", { connectionId: id });
  const readable = await resumeReadableTokens(ctx);
  const waiting = await ctx.queues.connectionsAwaitingVerify();
  const unverified = (await idsWithStatus(ctx.db, "pending")).filter((id) => !waiting.has(id));
  for (const id of unverified) await ctx.queues.enqueue("verify", { connectionId: id });
  await resumeErasures(ctx);
  if (readable) log.info("connections paused for an unreadable token decrypt again; verifying them", { connections: readable });
  if (added.length || removed || unverified.length) {
    log.warn("Redis was missing work Postgres knows about; rebuilt", { added: added.length, removed, verifiesQueued: unverified.length });
  }
  return { added: added.length, removed, verifiesQueued: unverified.length };
}

/** Connections paused because their token could not be decrypted, whose token decrypts now (its key was restored): verified again. */
async function resumeReadableTokens(ctx: AppContext): Promise<number> {
  let resumed = 0;
  for (const { id, ciphertext } of await unreadableTokens(ctx.db)) {
    try {
      ctx.vault.open(ciphertext, id);
    } catch (err) {
      if (err instanceof VaultError) continue;
      throw err;
    }
    if (!(await markTokenReadable(ctx.db, id, ciphertext))) continue;
    await ctx.queues.enqueue("verify", { connectionId: id });
    resumed++;
  }
  return resumed;
}
