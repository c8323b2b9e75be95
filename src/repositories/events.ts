import type { Db } from "../db/client.js";
import { EVENT_KINDS } from "../domain/event-kinds.js";
import type { EventKind, IntegrationEvent, Prisma } from "../generated/prisma/client.js";
import { redact, redactText } from "../redact.js";

/** SQL: the newest (or oldest) event of `kinds`, one LIMIT 1 probe per kind on the (connection, kind, occurred_at) index. */
export function latestEvent(
  kinds: EventKind[],
  columns: string,
  where = "",
  { connection = "c.id", order = "DESC" }: { connection?: string; order?: "DESC" | "ASC" } = {},
): string {
  const probes = kinds.map(
    (k) => `(SELECT ${columns} FROM integration_events e WHERE e.connection_id = ${connection} AND e.kind = '${k}' ${where}
      ORDER BY e.occurred_at ${order}, e.id ${order} LIMIT 1)`,
  );
  return `SELECT * FROM (${probes.join(" UNION ALL ")}) p ORDER BY occurred_at ${order} LIMIT 1`;
}

/** `level` is the kind's in EVENT_KINDS unless given (a retried kind is recorded at warn while retried). */
export type NewEvent = Pick<IntegrationEvent, "connectionId" | "kind" | "message"> &
  Partial<Pick<IntegrationEvent, "level" | "httpStatus" | "retryAfterSeconds" | "jobId">> & { detail?: Record<string, unknown> };

/** An event as stored: secrets are scrubbed on the way in. */
function scrubbed(event: NewEvent) {
  return {
    connectionId: event.connectionId,
    kind: event.kind,
    level: event.level ?? EVENT_KINDS[event.kind].level,
    message: redactText(event.message).slice(0, 1000),
    httpStatus: event.httpStatus ?? null,
    retryAfterSeconds: event.retryAfterSeconds ?? null,
    jobId: event.jobId ?? null,
    detail: event.detail ? (redact(event.detail) as Prisma.InputJsonValue) : undefined,
  };
}

/** Appends a row to the log support staff read. */
export async function recordEvent(db: Db | Prisma.TransactionClient, event: NewEvent): Promise<void> {
  await db.integrationEvent.create({ data: scrubbed(event) });
}

/**
 * The event as an INSERT … SELECT per row of `source` (with an `id` column) inside another statement,
 * so it is written exactly when the statement's change is; its values are `eventParams` from `$first` on.
 */
export const insertEventFrom = (source: string, first: number) => `
  INSERT INTO integration_events (connection_id, kind, level, message, job_id, detail)
  SELECT id, $${first}::"EventKind", $${first + 1}::"EventLevel", $${first + 2}, $${first + 3}, $${first + 4}::jsonb FROM ${source}`;

export function eventParams(event: Omit<NewEvent, "connectionId">): unknown[] {
  const e = scrubbed({ ...event, connectionId: "" });
  return [e.kind, e.level, e.message, e.jobId, e.detail === undefined ? null : JSON.stringify(e.detail)];
}

// Opaque keyset cursors for the paged lists (events, connections): the time and id of the last row of a page, base64url. A cursor
// that does not decode to a real time and an id of the expected shape was not issued by this API, and is refused before SQL.

export const encodeCursor = (at: Date, id: string | bigint): string => Buffer.from(`${at.toISOString()}|${id}`).toString("base64url");

/** The position a cursor of ours holds; null for anything else (`id` must match `idPattern` whole). */
export function decodeKeyset(cursor: string, idPattern: RegExp): { at: Date; id: string } | null {
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|(.+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match || !idPattern.test(match[2]!)) return null;
  const at = new Date(match[1]!);
  // Written back exactly as we wrote it: month 13 or year 0000 are not times we issue.
  const issued = !Number.isNaN(at.getTime()) && at.getTime() >= 0 && at.toISOString() === match[1];
  return issued ? { at, id: match[2]! } : null;
}

/** An event's position (a bigint id); null when the cursor was not made by this module. */
export function decodeCursor(cursor: string): { at: Date; id: bigint } | null {
  const position = decodeKeyset(cursor, /^\d{1,19}$/);
  return position && BigInt(position.id) < 2n ** 63n ? { at: position.at, id: BigInt(position.id) } : null;
}

/** Newest first (served by the (connection, occurred_at desc, id desc) index), keyset-paginated. */
export async function listEvents(db: Db, connectionId: string, q: { kind?: EventKind; since?: Date; limit: number; cursor?: string }) {
  const after = q.cursor ? decodeCursor(q.cursor) : null;
  const rows = await db.integrationEvent.findMany({
    where: {
      connectionId,
      ...(q.kind ? { kind: q.kind } : {}),
      ...(q.since ? { occurredAt: { gte: q.since } } : {}),
      ...(after ? { OR: [{ occurredAt: { lt: after.at } }, { occurredAt: after.at, id: { lt: after.id } }] } : {}),
    },
    orderBy: [{ occurredAt: "desc" }, { id: "desc" }],
    take: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  const events = page.map(({ connectionId: _c, id, occurredAt, ...e }) => ({
    ...e,
    id: id.toString(),
    occurredAt: occurredAt.toISOString(),
  }));
  return { events, nextCursor: rows.length > q.limit && last ? encodeCursor(last.occurredAt, last.id) : null };
}
