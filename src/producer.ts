import { z } from "zod";
import type { AppContext } from "./context.js";
import { ConflictError, ServiceUnavailableError, ValidationError } from "./errors.js";
import { moduleLogger } from "./logger.js";
import * as connections from "./repositories/connections.js";
import { recordEvent } from "./repositories/events.js";

// The typed API the backend calls, and the contract the HTTP routes validate with. Job data never
// carries the token, and no return value does.

const log = moduleLogger("producer");

export const replicateToken = z
  .string()
  .trim()
  .min(8, "token is too short")
  .max(512, "token is too long")
  .regex(/^[A-Za-z0-9_\-.]+$/, "token has characters a Replicate API token never has");
/** Printable text: a NUL or control character is a 400 here, never a database error later. */
export const workspaceId = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]+$/u, "workspaceId must not contain control characters");
export const connectInput = z.object({ workspaceId, token: replicateToken }).strict();
/** An Idempotency-Key header value: printable, as clients generate them (UUIDs, ULIDs, hashes). */
export const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,200}$/, "Idempotency-Key must be 1-200 printable ASCII characters");
export const tokenInput = z.object({ token: replicateToken }).strict();
export const connectionId = z.uuid({ message: "connection id must be a UUID" });

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`);
    throw new ValidationError(`invalid input: ${issues.join("; ")}`, issues);
  }
  return result.data;
}

/** Runs a job-queue operation; Redis not answering becomes a 503 the caller can retry. */
async function queue<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    log.warn("job queue unavailable", { what, error: err });
    throw new ServiceUnavailableError(`the job queue (Redis) is not answering: ${what}; retry later`);
  }
}

/**
 * Stores the token encrypted, creates the connection (pending) and enqueues its verification. With
 * an idempotency key, a retry returns the connection the first request created. When the
 * verification cannot be queued, the connection is removed again (503): nothing is left for a
 * retrying client to duplicate.
 */
export async function connect(
  ctx: AppContext,
  input: z.input<typeof connectInput>,
  options: { idempotencyKey?: string } = {},
): Promise<connections.PublicConnection> {
  const parsed = parse(connectInput, input);
  const key = options.idempotencyKey === undefined ? undefined : parse(idempotencyKey, options.idempotencyKey);
  const { row, created } = await connections.createIdempotently(ctx.db, ctx.vault, { ...parsed, idempotencyKey: key });
  if (!created) {
    if (!connections.storesToken(ctx.vault, row, parsed.token) && row.status !== "disconnected") {
      throw new ConflictError("this Idempotency-Key was used for another token");
    }
    return connections.toPublic(row);
  }
  try {
    await queue("verification not queued; nothing was created", () => ctx.queues.enqueueVerify(row.id));
  } catch (err) {
    await connections.deleteNewConnection(ctx.db, row.id);
    throw err;
  }
  await recordEvent(ctx.db, { connectionId: row.id, kind: "connected", level: "info", message: "token stored; verification queued" });
  log.info("connection created", { connectionId: row.id, workspaceId: parsed.workspaceId });
  return connections.toPublic(row);
}

/**
 * Stores a new token (e.g. after a credential error) and verifies it again; syncing resumes on
 * success. While Redis is down: 503, and the stored token is verified once Redis is back (reconciler).
 */
export async function replaceToken(ctx: AppContext, id: string, token: string): Promise<connections.PublicConnection> {
  const row = await connections.replaceToken(ctx.db, ctx.vault, parse(connectionId, id), parse(replicateToken, token));
  await recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "token_replaced",
    level: "info",
    message: "token replaced; verification queued",
  });
  await queue("token stored; it is verified as soon as the queue is back", async () => {
    await ctx.queues.removeScheduler(row.id);
    await ctx.queues.enqueueVerify(row.id);
  });
  return connections.toPublic(row);
}

/**
 * Deletes the stored token before returning, marks the connection disconnected and stops all of its
 * jobs. Idempotent. Runs under the connection's row lock, so no page can be written after it. Works
 * while Redis is down too: jobs left behind find no token and stop, and the reconciler removes the
 * scheduler once Redis answers.
 */
export async function disconnect(ctx: AppContext, id: string): Promise<connections.PublicConnection> {
  const row = await connections.disconnect(ctx.db, parse(connectionId, id));
  try {
    await ctx.queues.removeScheduler(id);
    const removed = await ctx.queues.removePendingJobs(id);
    log.info("connection disconnected", { connectionId: id, pendingJobsRemoved: removed });
  } catch (err) {
    log.warn("connection disconnected; its jobs are cleaned up when Redis answers", { connectionId: id, error: err });
  }
  return connections.toPublic(row);
}

/** Starts a sync now, or does nothing if one is already pending or running. */
export async function syncNow(ctx: AppContext, id: string): Promise<void> {
  const row = await connections.requireConnection(ctx.db, parse(connectionId, id));
  if (row.status !== "connected") throw new ConflictError(`connection is ${row.status}; only connected connections sync`);
  await queue("sync not queued", () => ctx.queues.kickSync(id));
}
