import type { WebhookType } from "../domain/event-kinds.js";
import type { Health } from "../domain/health.js";

// What the backend receives: the Standard Webhooks envelope {type, timestamp, data}, with ids and health only, never a token or secret.

/** Stable per event and type: every attempt of one webhook carries the same id, so receivers deduplicate on it. */
export const webhookId = (eventId: bigint, type: string) => `evt_${eventId}_${type}`;

/** `timestamp` is the event's time, not an attempt's; `health` is as it was when the webhook was prepared. */
export function buildPayload(
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
