import type { Db } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";
import { recordEvent, type NewEvent } from "./events.js";

// The webhook outbox, rows inserted by a trigger on integration_events with the event that causes them; this module moves them on:
// pending → queued (handed to the webhook queue) → delivered | failed, or pending → expired.

// `payload` is the JSON body, fixed once (null until the relay prepared it); occurredAt is the causing event's.
const select = {
  id: true,
  eventId: true,
  connectionId: true,
  type: true,
  status: true,
  payload: true,
  event: { select: { occurredAt: true } },
} as const;
// webhookId is stable per event and type: every attempt of one webhook carries it, so receivers deduplicate on it.
const toRow = ({ event, ...r }: Prisma.WebhookDeliveryGetPayload<{ select: typeof select }>) => ({
  ...r,
  occurredAt: event.occurredAt,
  webhookId: `evt_${r.eventId}_${r.type}`,
});

/** Rows still pending after maxAgeMs describe a state long gone (webhooks were off, or the service down): not sent. */
export async function expireStaleWebhooks(db: Db, maxAgeMs: number): Promise<number> {
  const { count } = await db.webhookDelivery.updateMany({
    where: { status: "pending", createdAt: { lt: new Date(Date.now() - maxAgeMs) } },
    data: { status: "expired" },
  });
  return count;
}

/** The oldest rows not yet handed to the queue (served by the partial index on pending rows). */
export async function pendingWebhooks(db: Db, limit: number) {
  const rows = await db.webhookDelivery.findMany({ where: { status: "pending" }, orderBy: { id: "asc" }, take: limit, select });
  return rows.map(toRow);
}

/** Fixes the body the first time only, so every attempt (from any process) sends the same bytes. */
export async function fixWebhookPayload(db: Db, id: bigint, payload: string): Promise<void> {
  await db.webhookDelivery.updateMany({ where: { id, payload: null }, data: { payload } });
}

export async function markWebhookQueued(db: Db, id: bigint): Promise<void> {
  await db.webhookDelivery.updateMany({ where: { id, status: "pending" }, data: { status: "queued" } });
}

export async function findWebhook(db: Db, id: bigint) {
  const row = await db.webhookDelivery.findUnique({ where: { id }, select });
  return row && toRow(row);
}

/** Records an attempt on the row (with the status it moves to, if any) and in the event log, together. */
export async function recordWebhookAttempt(db: Db, id: bigint, status: "delivered" | "failed" | null, event: NewEvent): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.webhookDelivery.update({
      where: { id },
      data: {
        attempts: { increment: 1 },
        lastHttpStatus: event.httpStatus ?? null,
        ...(status ? { status } : {}),
        ...(status === "delivered" ? { deliveredAt: new Date() } : {}),
      },
    });
    await recordEvent(tx, event);
  });
}
