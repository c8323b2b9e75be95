import type { AppContext, Processors } from "../src/context.js";
import { eraseHistory } from "../src/lifecycle/erase.js";
import { pruneStep } from "../src/lifecycle/prune.js";
import { runTick, runWindowSlice } from "../src/lifecycle/sync-step.js";
import { verifyConnection } from "../src/lifecycle/verify.js";
import { deliverWebhook } from "../src/webhooks/deliver.js";

// One thin processor per job kind of the queue registry (src/queue/registry.ts, which says what each does), registered at
// start-up by src/service.ts, which refuses a kind without one. Processors never see BullMQ.
export const processors = (ctx: AppContext): Processors => ({
  verify: (data, job) => verifyConnection(ctx, data.connectionId, job.id),
  tick: (data, job) => runTick(ctx, data.connectionId, job),
  slice: (data, job) => runWindowSlice(ctx, data, job),
  deliver: async ({ deliveryId }, job) =>
    ctx.config.webhooks ? deliverWebhook(ctx.db, ctx.config.webhooks, deliveryId, job) : "webhooks_off",
  prune: () => pruneStep(ctx.db, ctx.config.sync.backfillDays),
  erase: (data) => eraseHistory(ctx, data.connectionId),
});
