import type { Db } from "../db/client.js";
import type { CoverageSource } from "../domain/coverage.js";
import { decodeCursor, encodeCursor } from "./keyset-cursor.js";
import type { AccountType, ConnectionStatus, EventKind } from "../generated/prisma/enums.js";
import { connectionHealth, type Health, type HealthInput, type HealthState } from "../domain/health.js";
import { parseCheckpoint, readSince } from "../domain/checkpoint.js";
import { TERMINAL_STATUSES, sqlList } from "../domain/prediction-status.js";

/**
 * Connections as support and the API read them: the row plus what health and coverage need (the
 * latest rate limit, error and success events), a page of them in ONE statement. Each event lookup
 * is a LIMIT 1 per kind on the (connection, kind, occurred_at) index, so its cost does not grow
 * with the length of the event log.
 */

export interface ConnectionView {
  id: string;
  workspaceId: string;
  status: ConnectionStatus;
  accountUsername: string | null;
  accountType: AccountType | null;
  verifiedAt: Date | null;
  lastSyncStartedAt: Date | null;
  lastSyncedAt: Date | null;
  highWaterMark: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** The run in progress, or null between runs. */
  currentRun: { runId: string; startedAt: string; pagesDone: number; predictionsSeen: number } | null;
  health: Health;
}

interface Row {
  id: string;
  workspace_id: string;
  status: ConnectionStatus;
  account_username: string | null;
  account_type: AccountType | null;
  verified_at: Date | null;
  last_sync_started_at: Date | null;
  last_synced_at: Date | null;
  high_water_mark: Date | null;
  sync_state: unknown;
  created_at: Date;
  updated_at: Date;
  rl_at: Date | null;
  rl_seconds: number | null;
  rl_paced: number | null;
  err_at: Date | null;
  err_kind: EventKind | null;
  err_status: number | null;
  ok_at: Date | null;
  recovered_at: Date | null;
  first_window_start: string | null;
  duplicate_of: string | null;
}

const ERROR_KINDS: EventKind[] = [
  "credential_invalid",
  "scope_denied",
  "duplicate_account",
  "account_changed",
  "provider_error",
  "foreign_link_refused",
  "sync_failed",
];
const SUCCESS_KINDS: EventKind[] = ["verified", "sync_completed"];

/** The newest (or oldest) matching event over several kinds: one LIMIT 1 index probe per kind. */
function pick(kinds: EventKind[], columns: string, where: string, order: "DESC" | "ASC"): string {
  const probes = kinds.map(
    (k) => `(SELECT ${columns} FROM integration_events e WHERE e.connection_id = c.id AND e.kind = '${k}' ${where}
      ORDER BY e.occurred_at ${order}, e.id ${order} LIMIT 1)`,
  );
  return `SELECT * FROM (${probes.join(" UNION ALL ")}) p ORDER BY occurred_at ${order} LIMIT 1`;
}

const SELECT = `
SELECT c.id, c.workspace_id, c.status, c.account_username, c.account_type, c.verified_at, c.last_sync_started_at,
       c.last_synced_at, c.high_water_mark, c.sync_state, c.created_at, c.updated_at, c.duplicate_of,
       rl.occurred_at AS rl_at, rl.retry_after_seconds AS rl_seconds, rl.paced_per_minute AS rl_paced,
       er.occurred_at AS err_at, er.kind AS err_kind, er.http_status AS err_status,
       ok.occurred_at AS ok_at, rec.occurred_at AS recovered_at, fw.window_start AS first_window_start
FROM connections c
LEFT JOIN LATERAL (${pick(["rate_limited"], `e.occurred_at, e.retry_after_seconds, (e.detail->>'pacedPerMinute')::float8 AS paced_per_minute`, "", "DESC")}) rl ON true
LEFT JOIN LATERAL (${pick(ERROR_KINDS, "e.occurred_at, e.kind, e.http_status", "AND e.level = 'error'", "DESC")}) er ON true
LEFT JOIN LATERAL (${pick([...SUCCESS_KINDS, "token_replaced"], "e.occurred_at", "", "DESC")}) ok ON true
LEFT JOIN LATERAL (${pick(SUCCESS_KINDS, "e.occurred_at", "AND e.occurred_at > coalesce(er.occurred_at, '-infinity')", "ASC")}) rec ON true
LEFT JOIN LATERAL (
  SELECT s.detail->>'windowStart' AS window_start
  FROM (SELECT e.occurred_at, e.detail->>'runId' AS run_id FROM integration_events e
        WHERE e.connection_id = c.id AND e.kind = 'sync_completed' ORDER BY e.occurred_at, e.id LIMIT 1) f
  CROSS JOIN LATERAL (SELECT e.detail FROM integration_events e
        WHERE e.connection_id = c.id AND e.kind = 'sync_started' AND e.occurred_at <= f.occurred_at AND e.detail->>'runId' = f.run_id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1) s
) fw ON true`;

function toHealthInput(r: Row): HealthInput {
  return {
    status: r.status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    verifiedAt: r.verified_at,
    lastSyncedAt: r.last_synced_at,
    checkpoint: parseCheckpoint(r.sync_state),
    lastRateLimited: r.rl_at ? { at: r.rl_at, retryAfterSeconds: r.rl_seconds, pacedPerMinute: r.rl_paced } : null,
    lastError: r.err_at && r.err_kind ? { at: r.err_at, kind: r.err_kind, httpStatus: r.err_status } : null,
    lastSuccessAt: r.ok_at,
    recoveredAt: r.recovered_at,
    duplicateOf: r.duplicate_of,
    account: r.account_type && r.account_username ? { type: r.account_type, username: r.account_username } : null,
  };
}

function toView(r: Row, now: Date): ConnectionView {
  const run = parseCheckpoint(r.sync_state);
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    status: r.status,
    accountUsername: r.account_username,
    accountType: r.account_type,
    verifiedAt: r.verified_at,
    lastSyncStartedAt: r.last_sync_started_at,
    lastSyncedAt: r.last_synced_at,
    highWaterMark: r.high_water_mark,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    currentRun: run && { runId: run.runId, startedAt: run.startedAt, pagesDone: run.pagesDone, predictionsSeen: run.predictionsSeen },
    health: connectionHealth(toHealthInput(r), now),
  };
}

function toCoverageSource(r: Row, oldestUnfinished: Date | null): CoverageSource {
  const cp = parseCheckpoint(r.sync_state);
  return {
    connectionId: r.id,
    disconnected: r.status === "disconnected",
    lastSyncedAt: r.last_synced_at,
    highWaterMark: r.high_water_mark,
    oldestUnfinished,
    firstWindowStart: r.first_window_start ? new Date(r.first_window_start) : null,
    run: cp && { windowStart: new Date(cp.windowStart), windowEnd: new Date(cp.windowEnd), oldestRead: readSince(cp) },
  };
}

// The start of the next run's window reaches back to it (see syncWindowStart); the partial index on
// unfinished ledger rows answers it.
const OLDEST_UNFINISHED = `
SELECT connection_id::text AS id, min(created_at) AS at FROM prediction_records
WHERE connection_id = ANY($1::uuid[]) AND status NOT IN (${sqlList(TERMINAL_STATUSES)}) GROUP BY connection_id`;

// Each health state comes from one stored status (failing and throttled from two), so a state
// filter first narrows by status in SQL, then by the computed state.
const STATUSES_OF: Record<HealthState, ConnectionStatus[]> = {
  verifying: ["pending"],
  backfilling: ["connected"],
  healthy: ["connected"],
  throttled: ["pending", "connected"],
  failing: ["pending", "connected"],
  action_required: ["credential_error"],
  disconnected: ["disconnected"],
};

export interface ConnectionListQuery {
  limit: number;
  cursor?: string;
  state?: HealthState;
  workspaceId?: string;
  /** Matches the connection id, the workspace id or the Replicate account name (substring, any case). */
  q?: string;
}

interface Position {
  createdAt: Date;
  id: string;
}

/** The position after which the next page starts; null when the cursor was not made by this module. */
export function decodeConnectionCursor(cursor: string): Position | null {
  const position = decodeCursor(cursor, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  return position && { createdAt: position.at, id: position.id };
}

const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

async function selectRows(db: Db, filters: string[], params: unknown[], limit?: number): Promise<Row[]> {
  const where = filters.length ? `WHERE ${filters.join(" AND ")}` : "";
  const take = limit === undefined ? "" : `LIMIT ${Number(limit)}`;
  return db.$queryRawUnsafe<Row[]>(`${SELECT} ${where} ORDER BY c.created_at DESC, c.id DESC ${take}`, ...params);
}

/**
 * A page of connections, newest first (created_at, id), with health. Without a state filter this is
 * one statement; with one, batches are read in the same order until the page is full.
 */
export async function listConnectionViews(
  db: Db,
  query: ConnectionListQuery,
  now = new Date(),
): Promise<{ connections: ConnectionView[]; nextCursor: string | null }> {
  const filters: string[] = [];
  const params: unknown[] = [];
  if (query.workspaceId) filters.push(`c.workspace_id = $${params.push(query.workspaceId)}`);
  if (query.q) {
    const p = `$${params.push(likePattern(query.q))}`;
    filters.push(`(c.id::text ILIKE ${p} OR c.workspace_id ILIKE ${p} OR c.account_username ILIKE ${p})`);
  }
  if (query.state) filters.push(`c.status = ANY($${params.push(STATUSES_OF[query.state])}::"ConnectionStatus"[])`);

  const found: ConnectionView[] = [];
  let after = query.cursor ? decodeConnectionCursor(query.cursor) : null;
  const batch = query.state ? Math.max(100, query.limit + 1) : query.limit + 1;
  for (;;) {
    const keyset = after ? [`(c.created_at, c.id) < ($${params.length + 1}::timestamptz, $${params.length + 2}::uuid)`] : [];
    const rows = await selectRows(db, [...filters, ...keyset], after ? [...params, after.createdAt, after.id] : params, batch);
    for (const r of rows) {
      const view = toView(r, now);
      if (!query.state || view.health.state === query.state) found.push(view);
      if (found.length > query.limit) break;
    }
    if (found.length > query.limit || rows.length < batch) break;
    const last = rows[rows.length - 1]!;
    after = { createdAt: last.created_at, id: last.id };
  }
  const page = found.slice(0, query.limit);
  const last = page[page.length - 1];
  return { connections: page, nextCursor: found.length > query.limit && last ? encodeCursor(last.createdAt, last.id) : null };
}

export async function getConnectionView(db: Db, id: string, now = new Date()): Promise<ConnectionView | null> {
  const [row] = await selectRows(db, [`c.id = $1::uuid`], [id]);
  return row ? toView(row, now) : null;
}

/** What coverage needs for each connection in scope of a usage query. */
export async function coverageSources(db: Db, scope: { workspaceId?: string; connectionId?: string }): Promise<CoverageSource[]> {
  // An erased connection (or one being erased) has no history to cover.
  const filters: string[] = [`c.erasure_requested_at IS NULL`];
  const params: unknown[] = [];
  if (scope.connectionId) filters.push(`c.id = $${params.push(scope.connectionId)}::uuid`);
  if (scope.workspaceId) filters.push(`c.workspace_id = $${params.push(scope.workspaceId)}`);
  const rows = await selectRows(db, filters, params);
  const unfinished = await db.$queryRawUnsafe<{ id: string; at: Date }[]>(
    OLDEST_UNFINISHED,
    rows.map((r) => r.id),
  );
  const oldest = new Map(unfinished.map((u) => [u.id, u.at]));
  return rows.map((r) => toCoverageSource(r, oldest.get(r.id) ?? null));
}

/**
 * Connected connections and when their data was last fresh: the last finished run's start, or,
 * before the first run finished, the verification (so a stuck first backfill ages too).
 */
export async function syncAges(db: Db): Promise<{ id: string; workspaceId: string; freshAt: Date }[]> {
  const rows = await db.connection.findMany({
    where: { status: "connected" },
    select: { id: true, workspaceId: true, lastSyncedAt: true, verifiedAt: true, createdAt: true },
  });
  return rows.map((r) => ({ id: r.id, workspaceId: r.workspaceId, freshAt: r.lastSyncedAt ?? r.verifiedAt ?? r.createdAt }));
}
