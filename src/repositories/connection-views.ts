import type { Db } from "../db/client.js";
import type { CoverageSource } from "../domain/coverage.js";
import { decodeCursor, encodeCursor } from "./keyset-cursor.js";
import { latestEvent } from "./events.js";
import type { AccountType, ConnectionStatus } from "../generated/prisma/enums.js";
import type { HealthInput } from "../domain/health.js";
import { parseCheckpoint, readSince } from "../domain/checkpoint.js";
import {
  ERROR_KINDS,
  RECOVERY_KINDS,
  RETRIED_ERROR_KINDS,
  SUCCESS_KINDS,
  WARNING_END_KINDS,
  WARNING_KINDS,
  type ErrorKind,
  type WarningKind,
} from "../domain/event-kinds.js";
import { TERMINAL_STATUSES, sqlList } from "../domain/prediction-status.js";

/**
 * Connections as support and the API read them: the row plus the events health and coverage read
 * (the latest rate limit, error, success, retry and warnings), a page of them in ONE statement. Each
 * event lookup is a LIMIT 1 per kind on the (connection, kind, occurred_at) index, so its cost does
 * not grow with the length of the event log. The caller composes health (src/domain/health.ts).
 */

export interface ConnectionRow extends HealthInput {
  id: string;
  workspaceId: string;
  accountUsername: string | null;
  accountType: AccountType | null;
  lastSyncStartedAt: Date | null;
  highWaterMark: Date | null;
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
  err_kind: ErrorKind | null;
  err_status: number | null;
  ok_at: Date | null;
  recovered_at: Date | null;
  retry_since: Date | null;
  retry_at: Date | null;
  retry_kind: ErrorKind | null;
  retry_status: number | null;
  retry_seconds: number | null;
  retry_attempt: number | null;
  retry_max: number | null;
  warnings: { at: string; kind: WarningKind; endpoint: string; httpStatus: number | null }[] | null;
  first_window_start: string | null;
  duplicate_of: string | null;
}

// Retries recorded since the row, the last error and the last success changed (a page written moves updated_at).
const RETRYING = "AND e.level = 'warn' AND e.occurred_at > greatest(c.updated_at, er.occurred_at, ok.occurred_at)";

// The window start of the first run that finished: coverage's first covered day.
const FIRST_WINDOW = `
LEFT JOIN LATERAL (
  SELECT s.detail->>'windowStart' AS window_start
  FROM (SELECT e.occurred_at, e.detail->>'runId' AS run_id FROM integration_events e
        WHERE e.connection_id = c.id AND e.kind = 'sync_completed' ORDER BY e.occurred_at, e.id LIMIT 1) f
  CROSS JOIN LATERAL (SELECT e.detail FROM integration_events e
        WHERE e.connection_id = c.id AND e.kind = 'sync_started' AND e.occurred_at <= f.occurred_at AND e.detail->>'runId' = f.run_id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1) s
) fw ON true`;

const SELECT = `
SELECT c.id, c.workspace_id, c.status, c.account_username, c.account_type, c.verified_at, c.last_sync_started_at,
       c.last_synced_at, c.high_water_mark, c.sync_state, c.created_at, c.updated_at, c.duplicate_of,
       rl.occurred_at AS rl_at, rl.retry_after_seconds AS rl_seconds, rl.paced_per_minute AS rl_paced,
       er.occurred_at AS err_at, er.kind AS err_kind, er.http_status AS err_status,
       ok.occurred_at AS ok_at, rec.occurred_at AS recovered_at, rt0.occurred_at AS retry_since,
       rt.occurred_at AS retry_at, rt.kind AS retry_kind, rt.http_status AS retry_status, rt.retry_after_seconds AS retry_seconds,
       rt.attempt AS retry_attempt, rt.max_attempts AS retry_max, wn.warnings, fw.window_start AS first_window_start
FROM connections c
LEFT JOIN LATERAL (${latestEvent(["rate_limited"], `e.occurred_at, e.retry_after_seconds, (e.detail->>'pacedPerMinute')::float8 AS paced_per_minute`)}) rl ON true
LEFT JOIN LATERAL (${latestEvent(ERROR_KINDS, "e.occurred_at, e.kind, e.http_status", "AND e.level = 'error'")}) er ON true
LEFT JOIN LATERAL (${latestEvent(SUCCESS_KINDS, "e.occurred_at")}) ok ON true
LEFT JOIN LATERAL (${latestEvent(RECOVERY_KINDS, "e.occurred_at", "AND e.occurred_at > coalesce(er.occurred_at, '-infinity')", { order: "ASC" })}) rec ON true
LEFT JOIN LATERAL (${latestEvent(
  RETRIED_ERROR_KINDS,
  `e.occurred_at, e.kind, e.http_status, e.retry_after_seconds, (e.detail->>'attempt')::int AS attempt, (e.detail->>'maxAttempts')::int AS max_attempts`,
  RETRYING,
)}) rt ON true
LEFT JOIN LATERAL (${latestEvent(RETRIED_ERROR_KINDS, "e.occurred_at", RETRYING, { order: "ASC" })}) rt0 ON true
LEFT JOIN LATERAL (
  SELECT jsonb_agg(jsonb_build_object('at', w.occurred_at, 'kind', w.kind, 'endpoint', w.endpoint, 'httpStatus', w.http_status)
                   ORDER BY w.occurred_at) AS warnings
  FROM (SELECT DISTINCT ON (e.detail->>'endpoint') e.occurred_at, e.kind, e.detail->>'endpoint' AS endpoint, e.http_status
        FROM integration_events e WHERE e.connection_id = c.id AND e.kind IN (${sqlList([...WARNING_KINDS, ...WARNING_END_KINDS])})
        ORDER BY e.detail->>'endpoint', e.occurred_at DESC, e.id DESC) w
  WHERE w.kind IN (${sqlList(WARNING_KINDS)})
) wn ON true
${FIRST_WINDOW}`;

/** The columns coverage reads (see toCoverageSource): none of the health lookups above. */
const COVERAGE_SELECT = `
SELECT c.id, c.status, c.last_synced_at, c.high_water_mark, c.sync_state, fw.window_start AS first_window_start
FROM connections c
${FIRST_WINDOW}`;

function toConnectionRow(r: Row): ConnectionRow {
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
    checkpoint: parseCheckpoint(r.sync_state),
    lastRateLimited: r.rl_at ? { at: r.rl_at, retryAfterSeconds: r.rl_seconds, pacedPerMinute: r.rl_paced } : null,
    lastError: r.err_at && r.err_kind ? { at: r.err_at, kind: r.err_kind, httpStatus: r.err_status } : null,
    lastSuccessAt: r.ok_at,
    recoveredAt: r.recovered_at,
    retrying:
      r.retry_since && r.retry_at && r.retry_kind
        ? {
            since: r.retry_since,
            last: {
              at: r.retry_at,
              kind: r.retry_kind,
              httpStatus: r.retry_status,
              attempt: r.retry_attempt,
              maxAttempts: r.retry_max,
              nextAt: r.retry_seconds === null ? null : new Date(r.retry_at.getTime() + r.retry_seconds * 1000),
            },
          }
        : null,
    warnings: (r.warnings ?? []).map((w) => ({ ...w, at: new Date(w.at) })),
    duplicateOf: r.duplicate_of,
    account: r.account_type && r.account_username ? { type: r.account_type, username: r.account_username } : null,
  };
}

type CoverageRow = Pick<Row, "id" | "status" | "last_synced_at" | "high_water_mark" | "sync_state" | "first_window_start">;

function toCoverageSource(r: CoverageRow, oldestUnfinished: Date | null): CoverageSource {
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

async function selectRows<R = Row>(db: Db, filters: string[], params: unknown[], limit?: number, select = SELECT): Promise<R[]> {
  const where = filters.length ? `WHERE ${filters.join(" AND ")}` : "";
  const take = limit === undefined ? "" : `LIMIT ${Number(limit)}`;
  return db.$queryRawUnsafe<R[]>(`${select} ${where} ORDER BY c.created_at DESC, c.id DESC ${take}`, ...params);
}

/**
 * A page of connections, newest first (created_at, id), of those `keep` accepts. Without `keep`
 * this is one statement; with it, batches are read in the same order until the page is full.
 */
export async function listConnectionRows(
  db: Db,
  query: { limit: number; cursor?: string; statuses?: ConnectionStatus[]; workspaceId?: string; q?: string },
  keep?: (row: ConnectionRow) => boolean,
): Promise<{ rows: ConnectionRow[]; nextCursor: string | null }> {
  const filters: string[] = [];
  const params: unknown[] = [];
  if (query.workspaceId) filters.push(`c.workspace_id = $${params.push(query.workspaceId)}`);
  if (query.q) {
    const p = `$${params.push(likePattern(query.q))}`;
    filters.push(`(c.id::text ILIKE ${p} OR c.workspace_id ILIKE ${p} OR c.account_username ILIKE ${p})`);
  }
  if (query.statuses) filters.push(`c.status = ANY($${params.push(query.statuses)}::"ConnectionStatus"[])`);

  const found: ConnectionRow[] = [];
  let after = query.cursor ? decodeConnectionCursor(query.cursor) : null;
  const batch = keep ? Math.max(100, query.limit + 1) : query.limit + 1;
  for (;;) {
    const keyset = after ? [`(c.created_at, c.id) < ($${params.length + 1}::timestamptz, $${params.length + 2}::uuid)`] : [];
    const rows = await selectRows(db, [...filters, ...keyset], after ? [...params, after.createdAt, after.id] : params, batch);
    for (const r of rows) {
      const row = toConnectionRow(r);
      if (!keep || keep(row)) found.push(row);
      if (found.length > query.limit) break;
    }
    if (found.length > query.limit || rows.length < batch) break;
    const last = rows[rows.length - 1]!;
    after = { createdAt: last.created_at, id: last.id };
  }
  const page = found.slice(0, query.limit);
  const last = page[page.length - 1];
  return { rows: page, nextCursor: found.length > query.limit && last ? encodeCursor(last.createdAt, last.id) : null };
}

export async function getConnectionRow(db: Db, id: string): Promise<ConnectionRow | null> {
  const [row] = await selectRows(db, [`c.id = $1::uuid`], [id]);
  return row ? toConnectionRow(row) : null;
}

/** What coverage needs for each connection in scope of a usage query. */
export async function coverageSources(db: Db, scope: { workspaceId?: string; connectionId?: string }): Promise<CoverageSource[]> {
  // An erased connection (or one being erased) has no history to cover.
  const filters: string[] = [`c.erasure_requested_at IS NULL`];
  const params: unknown[] = [];
  if (scope.connectionId) filters.push(`c.id = $${params.push(scope.connectionId)}::uuid`);
  if (scope.workspaceId) filters.push(`c.workspace_id = $${params.push(scope.workspaceId)}`);
  const rows = await selectRows<CoverageRow>(db, filters, params, undefined, COVERAGE_SELECT);
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
