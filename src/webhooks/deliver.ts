import got from "got";
import { Webhook } from "standardwebhooks";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { WebhookDeliveryError } from "../errors.js";
import { moduleLogger } from "../logger.js";
import { findWebhook, recordWebhookAttempt } from "../repositories/webhooks.js";

// Posts one outbox row to the backend, signed per Standard Webhooks: every attempt sends the body fixed when the row was prepared,
// under the same webhook-id; only webhook-timestamp and the signature change. No token is ever added to the URL.

const WEBHOOK_TIMEOUT_MS = 10_000;

/** Sends the webhook; throws WebhookDeliveryError (after recording the attempt) so the queue retries with backoff. */
export async function deliverWebhook(
  db: Db,
  webhooks: NonNullable<Config["webhooks"]>,
  deliveryId: string,
  job: { id?: string; attempt: number; maxAttempts: number },
): Promise<"delivered" | "skipped"> {
  const row = await findWebhook(db, BigInt(deliveryId));
  // Delivered already (a re-enqueue after a crash), or never prepared/expired: nothing to send.
  if (!row?.payload || row.status === "delivered" || row.status === "expired") return "skipped";
  const log = moduleLogger("webhooks", { connectionId: row.connectionId, jobId: job.id, webhookId: row.webhookId });
  const sentAt = new Date();

  let httpStatus: number | null = null;
  let failure: string | null = null;
  try {
    const response = await got.post(webhooks.url, {
      body: row.payload,
      headers: {
        "content-type": "application/json",
        "user-agent": "replicate-usage-sync-webhooks",
        "webhook-id": row.webhookId,
        "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
        "webhook-signature": new Webhook(webhooks.secret).sign(row.webhookId, sentAt, row.payload),
      },
      timeout: { request: WEBHOOK_TIMEOUT_MS },
      // A redirect is a failed attempt: the signed body goes to the configured URL only.
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
    });
    httpStatus = response.statusCode;
    if (httpStatus < 200 || httpStatus >= 300) failure = `answered HTTP ${httpStatus}`;
  } catch (err) {
    // Network errors name the cause (ECONNREFUSED, a timeout); never the body or headers sent.
    failure = `could not be sent (${(err as { code?: string }).code ?? "network error"})`;
  }

  const detail = { webhookId: row.webhookId, type: row.type, attempt: job.attempt, maxAttempts: job.maxAttempts };
  const event = { connectionId: row.connectionId, jobId: job.id, httpStatus, detail };
  if (failure === null) {
    await recordWebhookAttempt(db, row.id, "delivered", { ...event, kind: "webhook_delivered", message: `webhook ${row.type} delivered` });
    log.info("webhook delivered", { type: row.type, attempt: job.attempt });
    return "delivered";
  }
  const final = job.attempt >= job.maxAttempts;
  const message = `webhook ${row.type} ${failure} (attempt ${job.attempt} of ${job.maxAttempts})${final ? "; given up" : "; will retry"}`;
  await recordWebhookAttempt(db, row.id, final ? "failed" : null, {
    ...event,
    kind: "webhook_failed",
    level: final ? "error" : "warn",
    message,
  });
  log.warn("webhook attempt failed", { type: row.type, attempt: job.attempt, httpStatus, final });
  throw new WebhookDeliveryError(`webhook ${failure}`, httpStatus);
}
