import { describeAccount, type AccountRef } from "../domain/account.js";
import type { Prisma } from "../generated/prisma/client.js";
import { recordEvent } from "./events.js";
import { addToUsage, usageDeltas } from "./usage.js";

// One Replicate account counts once per workspace, also over time: a connection that connects an account a disconnected
// connection of the workspace synced before takes over that one's ledger, usage and deployments. Its backfill then re-reads
// predictions the ledger already holds, which change usage only by what changed since (a prediction that finished meanwhile).

const PREDECESSORS = `
SELECT id FROM connections
WHERE workspace_id = $1 AND account_type = $2::"AccountType" AND account_username = $3 AND status = 'disconnected' AND id <> $4::uuid
  AND erasure_requested_at IS NULL -- history asked to be erased is not carried on
ORDER BY updated_at DESC, id
FOR UPDATE`;

// A prediction both ledgers hold (from before this transfer existed) stays the successor's: the
// predecessor's row leaves its ledger and what it added leaves its usage.
const DROP_SHARED = `
WITH dropped AS (
  DELETE FROM prediction_records p USING prediction_records s
  WHERE p.connection_id = $1::uuid AND s.connection_id = $2::uuid AND s.kind = p.kind AND s.prediction_id = p.prediction_id
  RETURNING p.*, -1 AS sign
),
deltas AS (${usageDeltas("dropped")})
${addToUsage("$1::uuid", "$3", "deltas")}`;

const END_RUN = `UPDATE connections SET sync_state = NULL WHERE id = $1::uuid AND sync_state IS NOT NULL`;

const MOVE_LEDGER = `UPDATE prediction_records SET connection_id = $2::uuid WHERE connection_id = $1::uuid`;

// Rows a subtraction left at zero are not carried over.
const MOVE_USAGE = `
WITH moved AS (DELETE FROM usage_buckets WHERE connection_id = $1::uuid RETURNING *),
kept AS (SELECT * FROM moved WHERE predictions <> 0),
added AS (${addToUsage("$2::uuid", "workspace_id", "kept")} RETURNING 1)
SELECT (SELECT count(*) FROM added)::int AS "usageRows", (SELECT coalesce(sum(predictions), 0) FROM kept)::int AS predictions`;

// The successor read the current releases before it connected; older ones only the predecessor knew.
const MOVE_DEPLOYMENTS = `
WITH moved AS (DELETE FROM deployments WHERE connection_id = $1::uuid RETURNING *)
INSERT INTO deployments (connection_id, name, release_number, model, version, hardware, min_instances, max_instances, effective_from, last_seen_on)
SELECT $2::uuid, name, release_number, model, version, hardware, min_instances, max_instances, effective_from, last_seen_on FROM moved
ON CONFLICT DO NOTHING`;

/** In the transaction that connects `successorId`, with a history_moved event on both sides of each move that carried anything. */
export async function takeOverHistory(
  tx: Prisma.TransactionClient,
  successorId: string,
  workspaceId: string,
  account: AccountRef,
): Promise<void> {
  const predecessors = await tx.$queryRawUnsafe<{ id: string }[]>(PREDECESSORS, workspaceId, account.type, account.username, successorId);
  let moved = false;
  for (const { id: from } of predecessors) {
    await tx.$executeRawUnsafe(DROP_SHARED, from, successorId, workspaceId);
    const ledgerRows = await tx.$executeRawUnsafe(MOVE_LEDGER, from, successorId);
    const [usage] = await tx.$queryRawUnsafe<{ usageRows: number; predictions: number }[]>(MOVE_USAGE, from, successorId);
    await tx.$executeRawUnsafe(MOVE_DEPLOYMENTS, from, successorId);
    if (ledgerRows === 0 && usage!.usageRows === 0) continue;
    moved = true;
    const detail = { from, to: successorId, predictions: usage!.predictions, usageRows: usage!.usageRows, ledgerRows };
    const what = `${usage!.predictions} predictions over ${usage!.usageRows} usage rows`;
    const sides = {
      [from]: `usage history (${what}) moved to connection ${successorId}, which connected ${describeAccount(account)} again in this workspace`,
      [successorId]: `continues the usage history of disconnected connection ${from} (${what}) for ${describeAccount(account)}, so it counts once`,
    };
    for (const [connectionId, message] of Object.entries(sides))
      await recordEvent(tx, { connectionId, kind: "history_moved", message, detail });
  }
  // A page write of a run the successor had in flight (its token was replaced) may have read its
  // ledger before the move; ending that run makes its fence refuse the write, and the next run re-reads.
  if (moved) await tx.$executeRawUnsafe(END_RUN, successorId);
}
