import type { Db } from "../db/client.js";
import { EVENT_KINDS } from "../domain/event-kinds.js";
import type { EventKind, IntegrationEvent, Prisma } from "../generated/prisma/client.js";
import { decodeCursor as decodeKeyset, encodeCursor } from "./keyset-cursor.js";
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

const MAX_BIGINT = 2n ** 63n - 1n;

/** The position after which the next page starts; null when the cursor was not made by this module. */
export function decodeCursor(cursor: string): { occurredAt: Date; id: bigint } | null {
  const position = decodeKeyset(cursor, /^\d{1,19}$/);
  const id = position && BigInt(position.id);
  return position && id !== null && id <= MAX_BIGINT ? { occurredAt: position.at, id } : null;
}

/** Newest first (served by the (connection, occurred_at desc, id desc) index), keyset-paginated. */
export async function listEvents(db: Db, connectionId: string, q: { kind?: EventKind; since?: Date; limit: number; cursor?: string }) {
  const after = q.cursor ? decodeCursor(q.cursor) : null;
  const rows = await db.integrationEvent.findMany({
    where: {
      connectionId,
      ...(q.kind ? { kind: q.kind } : {}),
      ...(q.since ? { occurredAt: { gte: q.since } } : {}),
      ...(after ? { OR: [{ occurredAt: { lt: after.occurredAt } }, { occurredAt: after.occurredAt, id: { lt: after.id } }] } : {}),
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
