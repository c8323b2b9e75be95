import type { AppContext } from "../context.js";
import { ConflictError, NotFoundError } from "../errors.js";
import { moduleLogger } from "../logger.js";
import { connectionNotFound } from "../repositories/connections.js";
import * as erasure from "../repositories/erasure.js";

// A request is a row change in Postgres (a crash or Redis down loses nothing: the reconciler enqueues it); every step can run again.

const log = moduleLogger("erase");

type RequestContext = Pick<AppContext, "db" | "queues">;
const toErasureView = ({ status: _, ...view }: erasure.ErasureRow) => view;

export async function readErasure(ctx: RequestContext, id: string) {
  const row = await erasure.readErasure(ctx.db, id);
  if (!row) throw connectionNotFound(id);
  return toErasureView(row);
}

/** Requests the erasure of a disconnected connection (409 otherwise); asking again changes nothing. */
export async function requestErasure(ctx: RequestContext, id: string) {
  const row = await erasure.requestErasure(ctx.db, id);
  if (!row) throw connectionNotFound(id);
  if (!row.requestedAt) {
    throw new ConflictError(
      `connection is ${row.status}; only a disconnected connection is erased (disconnect it, or ask with disconnect: true)`,
    );
  }
  if (!row.erasedAt) {
    await ctx.queues.enqueue("erase", { connectionId: id }).catch((error: unknown) => {
      log.warn("erasure recorded; it is queued once Redis answers (reconciler)", { connectionId: id, error });
    });
  }
  return toErasureView(row);
}

/** Requests the erasure of every disconnected connection of the workspace; 404 when it has none at all. */
export async function requestWorkspaceErasure(ctx: RequestContext, workspaceId: string) {
  const rows = await erasure.workspaceErasures(ctx.db, workspaceId);
  if (!rows.length) throw new NotFoundError(`workspace ${workspaceId} has no connections`);
  const erasures = [];
  for (const row of rows) if (row.status === "disconnected") erasures.push(await requestErasure(ctx, row.connectionId));
  const skipped = rows.flatMap(({ connectionId, status }) => (status === "disconnected" ? [] : [{ connectionId, status }]));
  return { workspaceId, erasures, skipped };
}

/** Enqueues every unfinished erasure (a no-op for one already queued or running): the reconciler's part. */
export async function resumeErasures(ctx: RequestContext): Promise<number> {
  const unfinished = await erasure.unfinishedErasures(ctx.db);
  for (const id of unfinished) await ctx.queues.enqueue("erase", { connectionId: id });
  return unfinished.length;
}

/** Thrown to have the job retried later: the connection's jobs are still running. */
class ErasureWaiting extends Error {}

type EraseOutcome = { outcome: "not_requested" | "already_erased" } | { outcome: "erased"; deleted: erasure.ErasureCounts };

type EraseContext = Pick<AppContext, "db" | "queues" | "rateCap" | "vault" | "config">;

/** Deletes the history in batches, then jobs and pacing keys; waits (retry) for a job still running and erases what it wrote. */
export async function eraseHistory(ctx: EraseContext, id: string): Promise<EraseOutcome> {
  const row = await erasure.readErasure(ctx.db, id);
  if (!row?.requestedAt) return { outcome: "not_requested" };
  if (row.erasedAt) return { outcome: "already_erased" };
  const batch = ctx.config.erasure.batchRows;
  for (let pass = 1; ; pass++) {
    for (const table of Object.keys(erasure.ERASED_TABLES) as erasure.ErasedTable[]) {
      let deleted: number;
      do deleted = await erasure.eraseBatch(ctx.db, id, table, batch);
      while (deleted === batch);
    }
    const { active } = await ctx.queues.purgeConnection(id);
    if (active > 0) throw new ErasureWaiting(`${active} job(s) of the connection still running; the erasure goes on after them`);
    await forgetDeletedTokens(ctx);
    const done = await erasure.finishErasure(ctx.db, id);
    if (done === "already_finished") return { outcome: "already_erased" };
    if (done !== "rows_left") {
      log.info("history erased", { connectionId: id, ...done.finished });
      return { outcome: "erased", deleted: done.finished };
    }
    if (pass === 3) throw new ErasureWaiting("rows of the connection keep appearing; erasing again later");
  }
}

/** The pacing keys of tokens no connection holds any more, the erased connection's among them. */
async function forgetDeletedTokens(ctx: EraseContext): Promise<void> {
  const stored = await erasure.storedCiphertexts(ctx.db);
  const tokens = stored.flatMap(({ id, ciphertext }) => {
    try {
      return [ctx.vault.open(ciphertext, id)];
    } catch {
      return []; // unreadable: that connection is paused and makes no requests
    }
  });
  await ctx.rateCap.forgetAllBut(tokens);
}
