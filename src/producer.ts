import { z } from "zod";
import type { AppContext } from "./context.js";
import { ConflictError, ValidationError } from "./errors.js";
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

/** Stores the token encrypted, creates the connection (pending) and enqueues its verification. */
export async function connect(ctx: AppContext, input: { workspaceId: string; token: string }): Promise<connections.PublicConnection> {
  const { workspaceId, token } = parse(connectInput, input);
  const row = await connections.createConnection(ctx.db, ctx.vault, workspaceId, token);
  await recordEvent(ctx.db, { connectionId: row.id, kind: "connected", level: "info", message: "token stored; verification queued" });
  await ctx.queues.enqueueVerify(row.id);
  log.info("connection created", { connectionId: row.id, workspaceId });
  return connections.toPublic(row);
}

/** Stores a new token (e.g. after a credential error) and verifies it again; syncing resumes on success. */
export async function replaceToken(ctx: AppContext, id: string, token: string): Promise<connections.PublicConnection> {
  const row = await connections.replaceToken(ctx.db, ctx.vault, parse(connectionId, id), parse(replicateToken, token));
  await ctx.queues.removeScheduler(row.id);
  await recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "token_replaced",
    level: "info",
    message: "token replaced; verification queued",
  });
  await ctx.queues.enqueueVerify(row.id);
  return connections.toPublic(row);
}

/**
 * Deletes the stored token before returning, marks the connection disconnected and stops all of its
 * jobs. Idempotent. Runs under the connection's row lock, so no page can be written after it.
 */
export async function disconnect(ctx: AppContext, id: string): Promise<connections.PublicConnection> {
  const row = await connections.disconnect(ctx.db, parse(connectionId, id));
  await ctx.queues.removeScheduler(id);
  const removed = await ctx.queues.removePendingJobs(id);
  log.info("connection disconnected", { connectionId: id, pendingJobsRemoved: removed });
  return connections.toPublic(row);
}

/** Starts a sync now, or does nothing if one is already pending or running. */
export async function syncNow(ctx: AppContext, id: string): Promise<void> {
  const row = await connections.requireConnection(ctx.db, parse(connectionId, id));
  if (row.status !== "connected") throw new ConflictError(`connection is ${row.status}; only connected connections sync`);
  await ctx.queues.kickSync(id);
}
