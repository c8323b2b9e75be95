import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AppContext } from "./context.js";
import { ConflictError, NotFoundError, ValidationError } from "./errors.js";
import { Prisma } from "./generated/prisma/client.js";
import { moduleLogger } from "./logger.js";
import { jobIds, type VerifyJobData } from "./queue/queues.js";
import { removePendingJobs, removeSyncScheduler } from "./queue/schedulers.js";
import * as connections from "./repositories/connections.js";
import { recordEvent } from "./repositories/events.js";
import { kickSync } from "./lifecycle/sync-step.js";

// The typed API the backend calls. Job data never carries the token, and no return value does.

const log = moduleLogger("producer");

export const replicateToken = z
  .string()
  .trim()
  .min(8, "token is too short")
  .max(512, "token is too long")
  .regex(/^[A-Za-z0-9_\-.]+$/, "token has characters a Replicate API token never has");
export const connectInput = z.object({ workspaceId: z.string().trim().min(1).max(200), token: replicateToken });
export const connectionId = z.uuid({ message: "connection id must be a UUID" });

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`);
    throw new ValidationError(`invalid input: ${issues.join("; ")}`, issues);
  }
  return result.data;
}

async function enqueueVerify(ctx: AppContext, id: string): Promise<void> {
  const data: VerifyJobData = { connectionId: id };
  await ctx.queues.verify.add("verify", data, { jobId: jobIds.verify(id, randomUUID()) });
}

async function requireConnection(ctx: AppContext, id: string) {
  const row = await ctx.db.connection.findUnique({ where: { id: parse(connectionId, id) } });
  if (!row) throw new NotFoundError(`connection ${id} not found`);
  return row;
}

/** Stores the token encrypted, creates the connection (pending) and enqueues its verification. */
export async function connect(ctx: AppContext, input: { workspaceId: string; token: string }): Promise<connections.PublicConnection> {
  const { workspaceId, token } = parse(connectInput, input);
  const row = await connections.createConnection(ctx.db, ctx.vault, workspaceId, token);
  await recordEvent(ctx.db, { connectionId: row.id, kind: "connected", level: "info", message: "token stored; verification queued" });
  await enqueueVerify(ctx, row.id);
  log.info("connection created", { connectionId: row.id, workspaceId });
  return connections.toPublic(row);
}

/** Stores a new token (e.g. after a credential error) and verifies it again; syncing resumes on success. */
export async function replaceToken(ctx: AppContext, id: string, token: string): Promise<connections.PublicConnection> {
  const existing = await requireConnection(ctx, id);
  if (existing.status === "disconnected") throw new ConflictError("connection is disconnected; create a new connection instead");
  const row = await connections.replaceToken(ctx.db, ctx.vault, existing.id, parse(replicateToken, token));
  await removeSyncScheduler(ctx.queues, row.id);
  await recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "token_replaced",
    level: "info",
    message: "token replaced; verification queued",
  });
  await enqueueVerify(ctx, row.id);
  return connections.toPublic(row);
}

/**
 * Deletes the stored token before returning, marks the connection disconnected and stops all of its
 * jobs. Idempotent. Runs under the connection's row lock, so no page can be written after it.
 */
export async function disconnect(ctx: AppContext, id: string): Promise<connections.PublicConnection> {
  await requireConnection(ctx, id);
  const row = await ctx.db.$transaction(async (tx) => {
    const locked = await connections.lockConnectionForSync(tx, id);
    const updated = await tx.connection.update({
      where: { id },
      data: { status: "disconnected", tokenCiphertext: null, tokenKeyId: null, syncState: Prisma.DbNull },
    });
    if (locked?.status !== "disconnected") {
      await recordEvent(tx, { connectionId: id, kind: "disconnected", level: "info", message: "disconnected; stored token deleted" });
    }
    return updated;
  });
  await removeSyncScheduler(ctx.queues, id);
  const removed = await removePendingJobs(ctx.queues, id);
  log.info("connection disconnected", { connectionId: id, pendingJobsRemoved: removed });
  return connections.toPublic(row);
}

/** Starts a sync now, or does nothing if one is already pending or running. */
export async function syncNow(ctx: AppContext, id: string): Promise<void> {
  const row = await requireConnection(ctx, id);
  if (row.status !== "connected") throw new ConflictError(`connection is ${row.status}; only connected connections sync`);
  await kickSync(ctx, id);
}
