import { randomUUID } from "node:crypto";
import { runPrepared, type Db } from "../db/client.js";
import type { AccountRef } from "../domain/account.js";
import { TRANSITIONS, type Transition } from "../domain/connection-state.js";
import { ConflictError, NotFoundError } from "../errors.js";
import { Prisma, type Connection } from "../generated/prisma/client.js";
import type { Account } from "../replicate/schemas.js";
import { tokenFingerprint, type TokenVault } from "../vault.js";
import { PAUSE_KINDS } from "../domain/event-kinds.js";
import { latestEvent, recordEvent, type NewEvent } from "./events.js";
import { takeOverHistory } from "./history-transfer.js";

/** A connection as every API and log may show it: the ciphertext never leaves this module. */
export type PublicConnection = Omit<Connection, "tokenCiphertext" | "tokenKeyId" | "syncState">;

export function toPublic(row: Connection): PublicConnection {
  const { tokenCiphertext: _c, tokenKeyId: _k, syncState: _s, ...rest } = row;
  return rest;
}

const isUniqueViolation = (err: unknown) => err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2002";

/** Only the state machine's allowed sources: the row lock the UPDATE takes makes a lost race a no-op. */
const allowed = (transition: Transition) => ({ status: { in: [...TRANSITIONS[transition].from] } });

export async function createConnection(
  db: Db,
  vault: TokenVault,
  workspaceId: string,
  token: string,
  idempotencyKey?: string,
): Promise<Connection> {
  // The id is chosen here because the ciphertext is bound to it.
  const id = randomUUID();
  const sealed = vault.seal(token, id);
  return db.connection.create({ data: { id, workspaceId, tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId, idempotencyKey } });
}

/** A new pending connection, or the one the same Idempotency-Key created in the workspace (`created: false`), also in a race. */
export async function createIdempotently(
  db: Db,
  vault: TokenVault,
  input: { workspaceId: string; token: string; idempotencyKey?: string },
): Promise<{ row: Connection; created: boolean }> {
  const { workspaceId, token, idempotencyKey } = input;
  const find = () => idempotencyKey && db.connection.findUnique({ where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey } } });
  const existing = await find();
  if (existing) return { row: existing, created: false };
  try {
    return { row: await createConnection(db, vault, workspaceId, token, idempotencyKey), created: true };
  } catch (err) {
    const raced = idempotencyKey && isUniqueViolation(err) && (await find());
    if (!raced) throw err;
    return { row: raced, created: false };
  }
}

/** Undoes a create whose verification could not be queued: nothing else refers to it yet. */
export async function deleteNewConnection(db: Db, id: string): Promise<void> {
  await db.connection.deleteMany({ where: { id, status: "pending", verifiedAt: null } });
}

/** Whether the stored token is `token` (an Idempotency-Key reused for another token is a conflict). */
export function storesToken(vault: TokenVault, row: Connection, token: string): boolean {
  return row.tokenCiphertext !== null && vault.open(row.tokenCiphertext, row.id) === token;
}

export const connectionNotFound = (id: string) => new NotFoundError(`connection ${id} not found`);

export async function requireConnection(db: Db, id: string): Promise<Connection> {
  const row = await db.connection.findUnique({ where: { id } });
  if (!row) throw connectionNotFound(id);
  return row;
}

/** Records a syncNow while connected: the run in progress then is followed by another (see completeRun). */
export async function requestSync(db: Db, id: string, at: Date): Promise<void> {
  await db.connection.updateMany({ where: { id, status: "connected" }, data: { syncRequestedAt: at } });
}

/** The workspace a connection belongs to (never changes), or null for an unknown id. */
export async function workspaceOf(db: Db, id: string): Promise<string | null> {
  const row = await db.connection.findUnique({ where: { id }, select: { workspaceId: true } });
  return row?.workspaceId ?? null;
}

/** Replaces the stored token; the connection goes back to pending until it is verified again. Never revives a disconnected one. */
export async function replaceToken(db: Db, vault: TokenVault, id: string, token: string): Promise<Connection> {
  const sealed = vault.seal(token, id);
  const { count } = await db.connection.updateMany({
    where: { id, ...allowed("replace_token") },
    data: { tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId, status: TRANSITIONS.replace_token.to },
  });
  const row = await requireConnection(db, id);
  if (count === 0) throw new ConflictError(`connection is ${row.status}; create a new connection instead`);
  return row;
}

// Connecting moves a reconnected account's history in the same transaction: 1M ledger rows took 12 s
// here, far past Prisma's 5 s default for an interactive transaction.
const TAKE_OVER_LIMITS = { maxWait: 10_000, timeout: 15 * 60_000 };
const STATE_CHANGE_LIMITS = { maxWait: 10_000, timeout: 15_000 };

/**
 * Connects `account` (verified with the token read as `ciphertext`) and takes over its disconnected history in the workspace, in
 * one transaction. Changes nothing when the token was replaced or disconnected meanwhile ("gone"), the connection synced another
 * account (`syncs`), or the account already counts in the workspace ("duplicate": a unique index decides races).
 */
export async function connectAccount(
  db: Db,
  id: string,
  ciphertext: string,
  account: Account,
): Promise<"connected" | "gone" | "duplicate" | { syncs: AccountRef }> {
  try {
    return await db.$transaction(async (tx) => {
      const locked = await lockConnection(tx, id);
      if (!locked) return "gone";
      if (locked.accountUsername !== null && (locked.accountUsername !== account.username || locked.accountType !== account.type)) {
        return { syncs: { type: locked.accountType!, username: locked.accountUsername } };
      }
      const { count } = await tx.connection.updateMany({
        where: { id, tokenCiphertext: ciphertext, ...allowed("verify_ok") },
        data: {
          status: TRANSITIONS.verify_ok.to,
          accountUsername: account.username,
          accountType: account.type,
          verifiedAt: new Date(),
          duplicateOf: null,
        },
      });
      if (count === 0) return "gone";
      await takeOverHistory(tx, id, locked.workspaceId, account);
      return "connected";
    }, TAKE_OVER_LIMITS);
  } catch (err) {
    if (isUniqueViolation(err)) return "duplicate";
    throw err;
  }
}

/** The connection that holds `account` in the workspace of connection `id` (not disconnected, not a duplicate), or null. */
export async function accountHolder(db: Db, id: string, account: AccountRef): Promise<string | null> {
  const [holder] = await db.$queryRawUnsafe<{ id: string }[]>(
    `SELECT h.id FROM connections c JOIN connections h ON h.workspace_id = c.workspace_id AND h.id <> c.id
     WHERE c.id = $1::uuid AND h.account_type = $2::"AccountType" AND h.account_username = $3 AND h.status <> 'disconnected'
       AND h.duplicate_of IS NULL LIMIT 1`,
    id,
    account.type,
    account.username,
  );
  return holder?.id ?? null;
}

/** `transition` and, if the row changed, its `event` in one transaction, while the token read as `ciphertext` (if given) is stored. */
async function transitionWithEvent(
  db: Db,
  id: string,
  transition: Transition,
  event: NewEvent,
  ciphertext?: string,
  data: Prisma.ConnectionUpdateManyMutationInput = {},
): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.connection.updateMany({
      where: { id, ...(ciphertext ? { tokenCiphertext: ciphertext } : {}), ...allowed(transition) },
      data: { status: TRANSITIONS[transition].to, ...data },
    });
    if (count === 1) await recordEvent(tx, event);
    return count === 1;
  }, STATE_CHANGE_LIMITS);
}

/**
 * Pauses the connection with `event` (a 401/403, an unreadable token, or what verification found: `event.kind` is the transition)
 * while the token read as `ciphertext` is stored: jobs meeting the same bad token pause it once, and a reader never sees one
 * without the other.
 */
export function markCredentialError(db: Db, id: string, event: NewEvent, ciphertext?: string, duplicateOf?: string | null) {
  const transition = event.kind === "account_changed" || event.kind === "duplicate_account" ? event.kind : "credential_rejected";
  return transitionWithEvent(db, id, transition, event, ciphertext, duplicateOf ? { duplicateOf } : {});
}

/** The connections paused by an unreadable token (and by nothing since), with that ciphertext. */
export async function unreadableTokens(db: Db): Promise<{ id: string; ciphertext: string }[]> {
  const { rows } = await db.pool.query<{ id: string; ciphertext: string }>(
    `SELECT c.id, c.token_ciphertext AS ciphertext FROM connections c
     WHERE c.status = 'credential_error' AND c.token_ciphertext IS NOT NULL
       AND (SELECT l.kind FROM (${latestEvent(PAUSE_KINDS, "e.kind, e.occurred_at")}) l) = 'token_unreadable'`,
  );
  return rows;
}

/** Back to pending (verified again) while the token read as `ciphertext` is stored: it decrypts again. */
export function markTokenReadable(db: Db, id: string, ciphertext: string): Promise<boolean> {
  const message = "The stored token decrypts again with the configured keys (its key was restored); the connection is verified again.";
  return transitionWithEvent(db, id, "token_readable", { connectionId: id, kind: "token_readable", message }, ciphertext);
}

/** Deletes the token, ends any run and disconnects in one transaction under the row lock, so nothing lands after it. Idempotent. */
export async function disconnect(db: Db, id: string): Promise<Connection> {
  // A DELETE must not fail because the pool is busy (Prisma's default wait for a connection is 2 s).
  return db.$transaction(async (tx) => {
    const locked = await lockConnection(tx, id);
    if (!locked) throw connectionNotFound(id);
    const row = await tx.connection.update({
      where: { id },
      data: { status: TRANSITIONS.disconnect.to, tokenCiphertext: null, tokenKeyId: null, syncState: Prisma.DbNull },
    });
    if (locked.status !== "disconnected") {
      await recordEvent(tx, { connectionId: id, kind: "disconnected", message: "disconnected; stored token deleted" });
    }
    return row;
  }, STATE_CHANGE_LIMITS);
}

/** The stored token with the ciphertext it was read from (a change made because of it applies only while it is stored). */
export async function storedToken(db: Db, vault: TokenVault, id: string): Promise<{ token: string; ciphertext: string } | null> {
  const row = await db.connection.findUnique({ where: { id }, select: { tokenCiphertext: true, status: true } });
  if (!row?.tokenCiphertext || row.status === "disconnected") return null;
  return { token: vault.open(row.tokenCiphertext, id), ciphertext: row.tokenCiphertext };
}

/** Whether the connection still stores this token (not disconnected, not replaced): one small read. */
export async function holdsToken(db: Db, vault: TokenVault, id: string, token: string): Promise<boolean> {
  const stored = await storedToken(db, vault, id);
  return stored !== null && tokenFingerprint(stored.token) === tokenFingerprint(token);
}

const READ_SYNC_STATE = {
  name: "read_sync_state",
  text: `SELECT token_ciphertext AS "tokenCiphertext", status, sync_state AS "syncState" FROM connections WHERE id = $1::uuid`,
};

/** Token and checkpoint, read without a lock (the page write re-checks both under it); null unless connected. */
export async function readSyncState(db: Db, vault: TokenVault, id: string): Promise<{ token: string; syncState: unknown } | null> {
  const [row] = await runPrepared<{ tokenCiphertext: string | null; status: string; syncState: unknown }>(db, READ_SYNC_STATE, [id]);
  if (!row?.tokenCiphertext || row.status !== "connected") return null;
  return { token: vault.open(row.tokenCiphertext, id), syncState: row.syncState };
}

/** Status and checkpoint, for saying why a fenced write did not apply. */
export async function readRunState(db: Db, id: string): Promise<{ status: string; syncState: unknown } | null> {
  return db.connection.findUnique({ where: { id }, select: { status: true, syncState: true } });
}

export const idsWithStatus = async (db: Db, status: "connected" | "pending") =>
  (await db.connection.findMany({ where: { status }, select: { id: true } })).map((r) => r.id);

export async function countByStatus(db: Db): Promise<{ status: string; count: number }[]> {
  const rows = await db.connection.groupBy({ by: ["status"], _count: true });
  return rows.map((r) => ({ status: r.status, count: r._count }));
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

/** Locks the row for the transaction: run writes are fenced statements taking the same lock, so a disconnect never interleaves. */
async function lockConnection(tx: Prisma.TransactionClient, id: string) {
  const [row] = await tx.$queryRawUnsafe<Pick<Connection, "status" | "workspaceId" | "accountType" | "accountUsername">[]>(
    `SELECT status, workspace_id AS "workspaceId", account_type AS "accountType", account_username AS "accountUsername"
     FROM connections WHERE id = $1::uuid FOR UPDATE`,
    id,
  );
  return row;
}
