import type { Db } from "../db/client.js";
import { moduleLogger } from "../logger.js";
import { connectionHealth, type Health } from "../domain/health.js";
import type { WebhookType } from "../domain/event-kinds.js";
import { getConnectionRow } from "../repositories/connection-views.js";
import { expireStaleWebhooks, fixWebhookPayload, markWebhookQueued, pendingWebhooks } from "../repositories/webhooks.js";

// Moves webhooks from the Postgres outbox (written with their event: nothing is lost while Redis is down) to the webhook queue; the
// next sweep of any process hands over what is still pending. The job id is the row id, so a row enqueued twice is one job.

/** A webhook still pending this long after its event describes a state long gone: it is not sent. */
const WEBHOOK_MAX_AGE_MS = 24 * 3600_000;
const BATCH = 100;

const log = moduleLogger("webhook-relay");

/** Hands every pending webhook to the queue (`enqueue`); returns how many. Every worker process runs it often. */
export async function sweepWebhooks(db: Db, enqueue: (deliveryId: string) => Promise<void>): Promise<number> {
  const expired = await expireStaleWebhooks(db, WEBHOOK_MAX_AGE_MS);
  if (expired) log.warn("stale webhooks not sent", { expired });
  let handed = 0;
  for (;;) {
    const rows = await pendingWebhooks(db, BATCH);
    for (const row of rows) {
      if (row.payload === null) {
        const connection = await getConnectionRow(db, row.connectionId);
        const payload = connection && buildPayload(row, { ...connection, health: connectionHealth(connection, new Date()) });
        if (payload) await fixWebhookPayload(db, row.id, JSON.stringify(payload));
      }
      await enqueue(row.id.toString());
      await markWebhookQueued(db, row.id);
      handed++;
    }
    if (rows.length < BATCH) return handed;
  }
}

/** The Standard Webhooks envelope, ids and health only (never a token or secret): the event's time, not an attempt's. */
function buildPayload(
  row: { eventId: bigint; connectionId: string; type: string; occurredAt: Date },
  connection: { workspaceId: string; health: Health },
) {
  return {
    type: row.type as WebhookType,
    timestamp: row.occurredAt.toISOString(),
    data: {
      connectionId: row.connectionId,
      workspaceId: connection.workspaceId,
      eventId: row.eventId.toString(),
      health: connection.health,
    },
  };
}
export type WebhookPayload = ReturnType<typeof buildPayload>;
