import { randomUUID } from "node:crypto";
import type { Db } from "../db/client.js";
import type { Connection, Prisma } from "../generated/prisma/client.js";
import { tokenFingerprint, type TokenVault } from "../vault.js";

/** A connection as every API and log may show it: the ciphertext never leaves this module. */
export type PublicConnection = Omit<Connection, "tokenCiphertext" | "tokenKeyId" | "syncState">;

export function toPublic(row: Connection): PublicConnection {
  const { tokenCiphertext: _c, tokenKeyId: _k, syncState: _s, ...rest } = row;
  return rest;
}

export async function createConnection(db: Db, vault: TokenVault, workspaceId: string, token: string): Promise<Connection> {
  // The id is chosen here because the ciphertext is bound to it.
  const id = randomUUID();
  const sealed = vault.seal(token, id);
  return db.connection.create({ data: { id, workspaceId, tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId } });
}

/** Replaces the stored token; the connection goes back to pending until it is verified again. */
export async function replaceToken(db: Db, vault: TokenVault, id: string, token: string): Promise<Connection> {
  const sealed = vault.seal(token, id);
  return db.connection.update({
    where: { id },
    data: { tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId, status: "pending" },
  });
}

/**
 * The stored token, plaintext, with the ciphertext it was read from (a failure handler pauses the
 * connection only if that ciphertext is still the stored one). Null when gone or disconnected.
 */
export async function storedToken(db: Db, vault: TokenVault, id: string): Promise<{ token: string; ciphertext: string } | null> {
  const row = await db.connection.findUnique({ where: { id }, select: { tokenCiphertext: true, status: true } });
  if (!row?.tokenCiphertext || row.status === "disconnected") return null;
  return { token: vault.open(row.tokenCiphertext, id), ciphertext: row.tokenCiphertext };
}

/** The plaintext token, or null when the connection is gone or disconnected. */
export async function readToken(db: Db, vault: TokenVault, id: string): Promise<string | null> {
  return (await storedToken(db, vault, id))?.token ?? null;
}

/** Whether the connection still stores this token (not disconnected, not replaced): one small read. */
export async function holdsToken(db: Db, vault: TokenVault, id: string, token: string): Promise<boolean> {
  const stored = await storedToken(db, vault, id);
  return stored !== null && tokenFingerprint(stored.token) === tokenFingerprint(token);
}

/**
 * What a page job needs before fetching: the token and the checkpoint, read without a lock (the
 * page write re-checks both under the row lock). Null unless the connection is connected.
 */
export async function readSyncState(db: Db, vault: TokenVault, id: string): Promise<{ token: string; syncState: unknown } | null> {
  const row = await db.connection.findUnique({ where: { id }, select: { tokenCiphertext: true, status: true, syncState: true } });
  if (!row?.tokenCiphertext || row.status !== "connected") return null;
  return { token: vault.open(row.tokenCiphertext, id), syncState: row.syncState };
}

/** Re-seals tokens stored under older keys; a row changed meanwhile (new token, disconnect) is left alone. */
export async function reencryptTokens(db: Db, vault: TokenVault): Promise<{ rotated: number; skipped: number }> {
  const stale = await db.connection.findMany({
    where: { tokenCiphertext: { not: null }, tokenKeyId: { not: vault.currentKeyId } },
    select: { id: true, tokenCiphertext: true },
  });
  let rotated = 0;
  for (const row of stale) {
    const resealed = vault.seal(vault.open(row.tokenCiphertext!, row.id), row.id);
    const { count } = await db.connection.updateMany({
      where: { id: row.id, tokenCiphertext: row.tokenCiphertext },
      data: { tokenCiphertext: resealed.ciphertext, tokenKeyId: resealed.keyId },
    });
    rotated += count;
  }
  return { rotated, skipped: stale.length - rotated };
}

export interface SyncLockedConnection {
  workspace_id: string;
  status: string;
  sync_state: unknown;
  high_water_mark: Date | null;
}

/**
 * Locks the connection row for the rest of the transaction. Every sync write and the disconnect
 * take this lock, so writes of one connection are serialized and a disconnect is never interleaved.
 */
export async function lockConnectionForSync(tx: Prisma.TransactionClient, id: string): Promise<SyncLockedConnection | undefined> {
  const [row] = await tx.$queryRawUnsafe<SyncLockedConnection[]>(
    `SELECT workspace_id, status, sync_state, high_water_mark FROM connections WHERE id = $1::uuid FOR UPDATE`,
    id,
  );
  return row;
}

/** After a 401/403: the connection stops syncing until replaceToken, unless its token was replaced meanwhile. */
export async function markCredentialError(db: Db, id: string, ciphertext: string): Promise<void> {
  await db.connection.updateMany({
    where: { id, tokenCiphertext: ciphertext, status: { in: ["pending", "connected"] } },
    data: { status: "credential_error" },
  });
}
