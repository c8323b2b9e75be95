import type { AppContext, Processors } from "../src/context.js";
import { eraseHistory } from "../src/lifecycle/erase.js";
import { pruneStep } from "../src/lifecycle/prune.js";
import { runTick, runWindowSlice } from "../src/lifecycle/sync-step.js";
import { verifyConnection } from "../src/lifecycle/verify.js";
import { deliverWebhook } from "../src/webhooks/deliver.js";

/**
 * One thin processor per job kind of the queue registry (src/queue/registry.ts), registered at
 * start-up by src/service.ts, which refuses a kind without one. Processors never see BullMQ.
 */
export const processors = (ctx: AppContext): Processors => ({
  /** Checks a new or replaced token and starts syncing. */
  verify: (data, job) => verifyConnection(ctx, data.connectionId, job.id),
  /** Starts a run and reads its first slice, or makes sure each open window of the current one has its slice job. */
  tick: (data, job) => runTick(ctx, data.connectionId, job),
  /** Reads and writes one window for a while, then chains the window's next slice. */
  slice: (data, job) => runWindowSlice(ctx, data, job),
  /** Posts one outbox row to the backend; its queue runs only while webhooks are configured. */
  deliver: async ({ deliveryId }, job) =>
    ctx.config.webhooks ? deliverWebhook(ctx.db, ctx.config.webhooks, deliveryId, job) : "webhooks_off",
  /** Deletes ledger rows no run can read again (scheduled daily). */
  prune: () => pruneStep(ctx.db, ctx.config.sync.backfillDays),
  /** Deletes a disconnected connection's history on request, in batches, and records the audit event. */
  erase: (data) => eraseHistory(ctx, data.connectionId),
});
