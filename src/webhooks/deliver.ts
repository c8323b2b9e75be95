import got from "got";
import { Webhook } from "standardwebhooks";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { WebhookDeliveryError } from "../errors.js";
import { moduleLogger } from "../logger.js";
import { findWebhook, recordWebhookAttempt } from "../repositories/webhooks.js";
import { webhookId } from "./payload.js";

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
  const id = webhookId(row.eventId, row.type);
  const log = moduleLogger("webhooks", { connectionId: row.connectionId, jobId: job.id, webhookId: id });
  const sentAt = new Date();
  const signature = new Webhook(webhooks.secret).sign(id, sentAt, row.payload);

  let httpStatus: number | null = null;
  let failure: string | null = null;
  try {
    const response = await got.post(webhooks.url, {
      body: row.payload,
      headers: {
        "content-type": "application/json",
        "user-agent": "replicate-usage-sync-webhooks",
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
        "webhook-signature": signature,
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

  const final = failure !== null && job.attempt >= job.maxAttempts;
  const detail = { webhookId: id, type: row.type, attempt: job.attempt, maxAttempts: job.maxAttempts };
  const event = { connectionId: row.connectionId, jobId: job.id, httpStatus, detail };
  await recordWebhookAttempt(
    db,
    row.id,
    { delivered: failure === null, final, httpStatus },
    failure === null
      ? { ...event, kind: "webhook_delivered", message: `webhook ${row.type} delivered` }
      : {
          ...event,
          kind: "webhook_failed",
          level: final ? "error" : "warn",
          message: `webhook ${row.type} ${failure} (attempt ${job.attempt} of ${job.maxAttempts})${final ? "; given up" : "; will retry"}`,
        },
  );
  if (failure === null) {
    log.info("webhook delivered", { type: row.type, attempt: job.attempt });
    return "delivered";
  }
  log.warn("webhook attempt failed", { type: row.type, attempt: job.attempt, httpStatus, final });
  throw new WebhookDeliveryError(`webhook ${failure}`, httpStatus);
}
