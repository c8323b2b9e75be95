import type { WebhookType } from "../domain/event-kinds.js";
import type { Health } from "../domain/health.js";

// What the backend receives: the Standard Webhooks envelope {type, timestamp, data}. Ids and health
// only: never a token, a secret or anything read from a customer's predictions.

export interface WebhookPayload {
  type: WebhookType;
  /** When the state change happened (the event's time), not when this attempt was sent. */
  timestamp: string;
  data: {
    connectionId: string;
    workspaceId: string;
    /** The integration event that caused it (GET /v1/connections/:id/events). */
    eventId: string;
    /** The connection's health when the webhook was prepared, moments after the event. */
    health: Health;
  };
}

/** Stable per event and type: every attempt of one webhook carries the same id, so receivers deduplicate on it. */
export const webhookId = (eventId: bigint, type: string) => `evt_${eventId}_${type}`;

export function buildPayload(
  row: { eventId: bigint; connectionId: string; type: string; occurredAt: Date },
  connection: { workspaceId: string; health: Health },
): WebhookPayload {
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
