import { runPrepared, type Db } from "../db/client.js";
import type { Connection } from "../generated/prisma/client.js";
import { eventParams, insertEventFrom } from "./events.js";

// Erasure of a disconnected connection's history, in bounded batches. Its state is on the row (erasure_requested_at, erasure_counts:
// advanced by the statement deleting each batch, erased_at), which stays as the tombstone the event log refers to.

/** What is erased, by table, and the key its count has in erasure_counts and in the audit event. */
export const ERASED_TABLES = {
  prediction_records: "ledgerRows",
  usage_buckets: "usageRows",
  deployments: "deploymentReleases",
} as const;
export type ErasedTable = keyof typeof ERASED_TABLES;
export type ErasureCounts = Record<(typeof ERASED_TABLES)[ErasedTable], number>;

/** A connection's erasure as the API shows it, and the connection's status. */
export type ErasureRow = Pick<Connection, "workspaceId" | "status"> & {
  connectionId: string;
  state: "not_requested" | "in_progress" | "erased";
  requestedAt: Date | null;
  erasedAt: Date | null;
  deleted: ErasureCounts | null;
};

const SELECT_ERASURE = `SELECT id AS "connectionId", workspace_id AS "workspaceId", status,
  CASE WHEN erased_at IS NOT NULL THEN 'erased' WHEN erasure_requested_at IS NOT NULL THEN 'in_progress' ELSE 'not_requested' END AS state,
  erasure_requested_at AS "requestedAt", erased_at AS "erasedAt", erasure_counts AS deleted FROM connections`;

export async function readErasure(db: Db, id: string): Promise<ErasureRow | null> {
  const [row] = await db.$queryRawUnsafe<ErasureRow[]>(`${SELECT_ERASURE} WHERE id = $1::uuid`, id);
  return row ?? null;
}

export async function workspaceErasures(db: Db, workspaceId: string): Promise<ErasureRow[]> {
  return db.$queryRawUnsafe<ErasureRow[]>(`${SELECT_ERASURE} WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceId);
}

/** Records the first request, of a disconnected connection only; updated_at stays (health's status change). Null: unknown id. */
export async function requestErasure(db: Db, id: string): Promise<ErasureRow | null> {
  await db.$executeRawUnsafe(
    `UPDATE connections SET erasure_requested_at = now(), erasure_counts = $2::jsonb
     WHERE id = $1::uuid AND status = 'disconnected' AND erasure_requested_at IS NULL`,
    id,
    JSON.stringify(Object.fromEntries(Object.values(ERASED_TABLES).map((key) => [key, 0]))),
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

/** Usage leaves out connections being erased: their history is half deleted until it is gone. */
export const notBeingErased = (connectionColumn: string) =>
  `${connectionColumn} NOT IN (SELECT id FROM connections WHERE erasure_requested_at IS NOT NULL AND erased_at IS NULL)`;

// One batch: the delete and the count it adds commit together. Deleting by ctid keeps each statement to its LIMIT rows whatever the
// table's key; a row a concurrent statement deleted first is not counted. Only a requested erasure of a disconnected connection deletes.
const batchStatement = (table: ErasedTable) => ({
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

export async function eraseBatch(db: Db, id: string, table: ErasedTable, limit: number): Promise<number> {
  const [row] = await runPrepared<{ n: number }>(db, batchStatement(table), [id, limit]);
  return row?.n ?? 0;
}

const ANY_LEFT = Object.keys(ERASED_TABLES)
  .map((t) => `EXISTS (SELECT 1 FROM ${t} WHERE connection_id = $1::uuid)`)
  .join(" OR ");

/** Ends the erasure once nothing is left, at most once, with the history_erased event; "rows_left": a running job wrote meanwhile. */
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

class RowsLeft extends Error {}

/** The ciphertext of every stored token (pending, connected or paused connections). */
export async function storedCiphertexts(db: Db): Promise<{ id: string; ciphertext: string }[]> {
  return db.$queryRawUnsafe<{ id: string; ciphertext: string }[]>(
    `SELECT id, token_ciphertext AS ciphertext FROM connections WHERE token_ciphertext IS NOT NULL`,
  );
}
