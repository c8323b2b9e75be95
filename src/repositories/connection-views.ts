import type { Db } from "../db/client.js";
import type { CoverageSource } from "../domain/coverage.js";
import { decodeKeyset, encodeCursor, latestEvent } from "./events.js";
import type { Connection } from "../generated/prisma/client.js";
import type { ConnectionStatus } from "../generated/prisma/enums.js";
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

// Connections as support and the API read them: the row plus the events health and coverage read,
// a page of them in ONE statement; each event lookup is a LIMIT 1 per kind (see latestEvent).

export type ConnectionRow = HealthInput &
  Pick<Connection, "id" | "workspaceId" | "accountUsername" | "accountType" | "lastSyncStartedAt" | "highWaterMark">;

/** The columns as selected: ConnectionRow's own, then rl (rate limit), err (error), retry and the first window. */
type Row = Omit<ConnectionRow, "checkpoint" | "lastRateLimited" | "lastError" | "retrying" | "warnings" | "account"> & {
  syncState: unknown;
  firstWindowStart: string | null;
  warnings: { at: string; kind: WarningKind; endpoint: string; httpStatus: number | null }[] | null;
} & Record<"rlAt" | "errAt" | "retrySince" | "retryAt", Date | null> &
  Record<"rlSeconds" | "rlPaced" | "errStatus" | "retryStatus" | "retrySeconds" | "retryAttempt" | "retryMax", number | null> &
  Record<"errKind" | "retryKind", ErrorKind | null>;

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
const COLUMNS = `c.id, c.status, c.last_synced_at AS "lastSyncedAt", c.high_water_mark AS "highWaterMark", c.sync_state AS "syncState",
       fw.window_start AS "firstWindowStart"`;

const SELECT = `
SELECT ${COLUMNS}, c.workspace_id AS "workspaceId", c.account_username AS "accountUsername", c.account_type AS "accountType",
       c.verified_at AS "verifiedAt", c.last_sync_started_at AS "lastSyncStartedAt", c.created_at AS "createdAt",
       c.updated_at AS "updatedAt", c.duplicate_of AS "duplicateOf",
       rl.occurred_at AS "rlAt", rl.retry_after_seconds AS "rlSeconds", rl.paced_per_minute AS "rlPaced",
       er.occurred_at AS "errAt", er.kind AS "errKind", er.http_status AS "errStatus",
       ok.occurred_at AS "lastSuccessAt", rec.occurred_at AS "recoveredAt", rt0.occurred_at AS "retrySince",
       rt.occurred_at AS "retryAt", rt.kind AS "retryKind", rt.http_status AS "retryStatus", rt.retry_after_seconds AS "retrySeconds",
       rt.attempt AS "retryAttempt", rt.max_attempts AS "retryMax", wn.warnings
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

// What coverage reads: none of the health lookups. The oldest unfinished prediction is where the next
// run's window reaches back to (see syncWindowStart), answered by the partial index on unfinished ledger rows.
const COVERAGE_SELECT = `
SELECT ${COLUMNS}, uf.at AS "oldestUnfinished"
FROM connections c
LEFT JOIN LATERAL (SELECT min(p.created_at) AS at FROM prediction_records p
  WHERE p.connection_id = c.id AND p.status NOT IN (${sqlList(TERMINAL_STATUSES)})) uf ON true
${FIRST_WINDOW}`;

function toConnectionRow(r: Row): ConnectionRow {
  return {
    ...r,
    checkpoint: parseCheckpoint(r.syncState),
    lastRateLimited: r.rlAt ? { at: r.rlAt, retryAfterSeconds: r.rlSeconds, pacedPerMinute: r.rlPaced } : null,
    lastError: r.errAt && r.errKind ? { at: r.errAt, kind: r.errKind, httpStatus: r.errStatus } : null,
    retrying:
      r.retrySince && r.retryAt && r.retryKind
        ? {
            since: r.retrySince,
            last: {
              at: r.retryAt,
              kind: r.retryKind,
              httpStatus: r.retryStatus,
              attempt: r.retryAttempt,
              maxAttempts: r.retryMax,
              nextAt: r.retrySeconds === null ? null : new Date(r.retryAt.getTime() + r.retrySeconds * 1000),
            },
          }
        : null,
    warnings: (r.warnings ?? []).map((w) => ({ ...w, at: new Date(w.at) })),
    account: r.accountType && r.accountUsername ? { type: r.accountType, username: r.accountUsername } : null,
  };
}

type CoverageRow = Pick<Row, "id" | "status" | "lastSyncedAt" | "highWaterMark" | "syncState" | "firstWindowStart"> & {
  oldestUnfinished: Date | null;
};

function toCoverageSource({ id, status, syncState, firstWindowStart, ...r }: CoverageRow): CoverageSource {
  const cp = parseCheckpoint(syncState);
  return {
    ...r,
    connectionId: id,
    disconnected: status === "disconnected",
    firstWindowStart: firstWindowStart ? new Date(firstWindowStart) : null,
    run: cp && { windowStart: new Date(cp.windowStart), windowEnd: new Date(cp.windowEnd), oldestRead: readSince(cp) },
  };
}

/** The (created_at, id) after which the next page starts; null when the cursor was not made by this module. */
export const decodeConnectionCursor = (cursor: string) =>
  decodeKeyset(cursor, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

async function selectRows<R = Row>(db: Db, filters: string[], params: unknown[], limit?: number, select = SELECT): Promise<R[]> {
  const where = filters.length ? `WHERE ${filters.join(" AND ")}` : "";
  const take = limit === undefined ? "" : `LIMIT ${Number(limit)}`;
  return db.$queryRawUnsafe<R[]>(`${select} ${where} ORDER BY c.created_at DESC, c.id DESC ${take}`, ...params);
}

/** A page of connections, newest first, of those `keep` accepts: one statement, or batches in order until the page is full. */
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
    const rows = await selectRows(db, [...filters, ...keyset], after ? [...params, after.at, after.id] : params, batch);
    for (const r of rows) {
      const row = toConnectionRow(r);
      if (!keep || keep(row)) found.push(row);
      if (found.length > query.limit) break;
    }
    if (found.length > query.limit || rows.length < batch) break;
    const last = rows[rows.length - 1]!;
    after = { at: last.createdAt, id: last.id };
  }
  const page = found.slice(0, query.limit);
  const last = page[page.length - 1];
  return { rows: page, nextCursor: found.length > query.limit && last ? encodeCursor(last.createdAt, last.id) : null };
}

export async function getConnectionRow(db: Db, id: string): Promise<ConnectionRow | null> {
  const [row] = await selectRows(db, [`c.id = $1::uuid`], [id]);
  return row ? toConnectionRow(row) : null;
}

export async function coverageSources(db: Db, scope: { workspaceId?: string; connectionId?: string }): Promise<CoverageSource[]> {
  // An erased connection (or one being erased) has no history to cover.
  const filters: string[] = [`c.erasure_requested_at IS NULL`];
  const params: unknown[] = [];
  if (scope.connectionId) filters.push(`c.id = $${params.push(scope.connectionId)}::uuid`);
  if (scope.workspaceId) filters.push(`c.workspace_id = $${params.push(scope.workspaceId)}`);
  const rows = await selectRows<CoverageRow>(db, filters, params, undefined, COVERAGE_SELECT);
  return rows.map(toCoverageSource);
}

/** Connected connections and when their data was last fresh: the last finished run's start, else (first backfill) the verification. */
export async function syncAges(db: Db): Promise<{ id: string; workspaceId: string; freshAt: Date }[]> {
  const rows = await db.connection.findMany({
    where: { status: "connected" },
    select: { id: true, workspaceId: true, lastSyncedAt: true, verifiedAt: true, createdAt: true },
  });
  return rows.map((r) => ({ id: r.id, workspaceId: r.workspaceId, freshAt: r.lastSyncedAt ?? r.verifiedAt ?? r.createdAt }));
}
