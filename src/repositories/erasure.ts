import { runPrepared, type Db, type Prepared } from "../db/client.js";
import type { ConnectionStatus } from "../generated/prisma/enums.js";
import { eventParams, insertEventFrom } from "./events.js";

// Erasure of a disconnected connection's history, in bounded batches. The state lives on the
// connection row: erasure_requested_at (asked for), erasure_counts (rows deleted so far, advanced by
// the very statement that deletes each batch, so a crash between two batches loses no count) and
// erased_at (finished, together with the one history_erased event). The row itself stays as a
// tombstone: the event log, kept as the audit trail, and webhook deliveries refer to it.

/** What is erased, by table, and the key its count has in erasure_counts and in the audit event. */
export const ERASED_TABLES = {
  prediction_records: "ledgerRows",
  usage_buckets: "usageRows",
  deployments: "deploymentReleases",
} as const;
export type ErasedTable = keyof typeof ERASED_TABLES;
export type ErasureCounts = Record<(typeof ERASED_TABLES)[ErasedTable], number>;

const ZERO_COUNTS: ErasureCounts = { ledgerRows: 0, usageRows: 0, deploymentReleases: 0 };

export interface ErasureRow {
  id: string;
  workspaceId: string;
  status: ConnectionStatus;
  requestedAt: Date | null;
  erasedAt: Date | null;
  counts: ErasureCounts | null;
}

const SELECT_ERASURE = `SELECT id, workspace_id AS "workspaceId", status, erasure_requested_at AS "requestedAt",
  erased_at AS "erasedAt", erasure_counts AS counts FROM connections`;

export async function readErasure(db: Db, id: string): Promise<ErasureRow | null> {
  const [row] = await db.$queryRawUnsafe<ErasureRow[]>(`${SELECT_ERASURE} WHERE id = $1::uuid`, id);
  return row ?? null;
}

/** Every connection of the workspace, oldest first. */
export async function workspaceErasures(db: Db, workspaceId: string): Promise<ErasureRow[]> {
  return db.$queryRawUnsafe<ErasureRow[]>(`${SELECT_ERASURE} WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceId);
}

/**
 * Records the request, once: only a disconnected connection (disconnected is final, so nothing
 * writes its history again), and only the first request sets the time. updated_at stays: it says
 * when the status last changed, which health reads. Returns the row as it is now (null: unknown id).
 */
export async function requestErasure(db: Db, id: string): Promise<ErasureRow | null> {
  await db.$executeRawUnsafe(
    `UPDATE connections SET erasure_requested_at = now(), erasure_counts = $2::jsonb
     WHERE id = $1::uuid AND status = 'disconnected' AND erasure_requested_at IS NULL`,
    id,
    JSON.stringify(ZERO_COUNTS),
  );
  return readErasure(db, id);
}

/** Erasures requested and not finished (the partial index connections_erasing_idx). */
export async function unfinishedErasures(db: Db): Promise<string[]> {
  const rows = await db.$queryRawUnsafe<{ id: string }[]>(
    `SELECT id FROM connections WHERE erasure_requested_at IS NOT NULL AND erased_at IS NULL ORDER BY erasure_requested_at`,
  );
  return rows.map((r) => r.id);
}

/**
 * A usage query's filter that leaves out connections being erased: their history is half deleted
 * until the erasure finishes, and then there is none.
 */
export const notBeingErased = (connectionColumn: string) =>
  `${connectionColumn} NOT IN (SELECT id FROM connections WHERE erasure_requested_at IS NOT NULL AND erased_at IS NULL)`;

// One batch: the delete and the count it adds commit together. Deleting by ctid keeps each
// statement to its LIMIT rows whatever the table's key; a row a concurrent statement deleted first
// is skipped and not counted. Only an erasure that was requested, of a disconnected connection, deletes.
const batchStatement = (table: ErasedTable): Prepared => ({
  name: `erase_${table}`,
  text: `WITH gone AS (
    DELETE FROM ${table} WHERE ctid = ANY (ARRAY(
      SELECT t.ctid FROM ${table} t
      WHERE t.connection_id = $1::uuid AND EXISTS (
        SELECT 1 FROM connections c WHERE c.id = $1::uuid AND c.status = 'disconnected'
          AND c.erasure_requested_at IS NOT NULL AND c.erased_at IS NULL)
      LIMIT $2::int))
    RETURNING 1
  ), n AS (SELECT count(*)::int AS n FROM gone), counted AS (
    UPDATE connections SET erasure_counts = jsonb_set(erasure_counts, '{${ERASED_TABLES[table]}}',
      to_jsonb((erasure_counts->>'${ERASED_TABLES[table]}')::bigint + (SELECT n FROM n)))
    WHERE id = $1::uuid AND (SELECT n FROM n) > 0
  )
  SELECT n FROM n`,
});
const BATCHES = Object.fromEntries(Object.keys(ERASED_TABLES).map((t) => [t, batchStatement(t as ErasedTable)])) as Record<
  ErasedTable,
  Prepared
>;

/** Deletes up to `limit` rows of the connection from `table`; returns how many. */
export async function eraseBatch(db: Db, id: string, table: ErasedTable, limit: number): Promise<number> {
  const [row] = await runPrepared<{ n: number }>(db, BATCHES[table], [id, limit]);
  return row?.n ?? 0;
}

const ANY_LEFT = Object.keys(ERASED_TABLES)
  .map((t) => `EXISTS (SELECT 1 FROM ${t} WHERE connection_id = $1::uuid)`)
  .join(" OR ");

/**
 * Ends the erasure once nothing is left: the tombstone forgets its run state (checkpoint,
 * high-water mark, sync times), and the history_erased event (counts only) and its
 * connection.erased webhook are written, all in one transaction and at most once.
 * "rows_left": something was written after the batches (a job that was still running); erase again.
 */
export async function finishErasure(db: Db, id: string): Promise<{ finished: ErasureCounts } | "already_finished" | "rows_left"> {
  return db
    .$transaction(async (tx) => {
      const [ended] = await tx.$queryRawUnsafe<{ counts: ErasureCounts; requestedAt: Date; rowsLeft: boolean }[]>(
        `UPDATE connections SET erased_at = now(), sync_state = NULL, high_water_mark = NULL, last_synced_at = NULL,
           last_sync_started_at = NULL, deployments_checked_at = NULL
         WHERE id = $1::uuid AND status = 'disconnected' AND erasure_requested_at IS NOT NULL AND erased_at IS NULL
         RETURNING erasure_counts AS counts, erasure_requested_at AS "requestedAt", (${ANY_LEFT}) AS "rowsLeft"`,
        id,
      );
      if (!ended) return "already_finished";
      if (ended.rowsLeft) throw new RowsLeft();
      const { counts } = ended;
      // The webhook trigger writes its connection.erased webhook (src/domain/event-kinds.ts).
      await tx.$executeRawUnsafe(
        insertEventFrom("(SELECT $1::uuid AS id) AS erased", 2),
        id,
        ...eventParams({
          kind: "history_erased",
          message:
            `usage history erased on request: ${counts.ledgerRows} ledger rows, ${counts.usageRows} daily usage rows and ` +
            `${counts.deploymentReleases} deployment releases deleted, run state cleared; this event log is kept`,
          detail: { ...counts, requestedAt: ended.requestedAt.toISOString() },
        }),
      );
      return { finished: counts };
    })
    .catch((err: unknown) => {
      if (err instanceof RowsLeft) return "rows_left" as const;
      throw err;
    });
}

/** Rolls the finishing transaction back when rows are left. */
class RowsLeft extends Error {}

/** The ciphertext of every stored token (pending, connected or paused connections). */
export async function storedCiphertexts(db: Db): Promise<{ id: string; ciphertext: string }[]> {
  return db.$queryRawUnsafe<{ id: string; ciphertext: string }[]>(
    `SELECT id, token_ciphertext AS ciphertext FROM connections WHERE token_ciphertext IS NOT NULL`,
  );
}
