import type { AppContext } from "../src/context.js";
import { deliverWebhook, type WebhookAttempt } from "../src/webhooks/deliver.js";

/** webhook: posts one outbox row to the backend; its worker runs only while webhooks are configured. */
export const webhookJob =
  (ctx: AppContext) =>
  (data: { deliveryId: string }, job: WebhookAttempt): Promise<string> => {
    if (!ctx.config.webhooks) return Promise.resolve("webhooks_off");
    return deliverWebhook({ db: ctx.db, webhooks: ctx.config.webhooks }, data.deliveryId, job);
  };
