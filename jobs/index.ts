import type { AppContext } from "../src/context.js";
import { eraseJob } from "./erase.job.js";
import { pruneJob } from "./prune.job.js";
import { syncJob } from "./sync.job.js";
import { verifyJob } from "./verify.job.js";
import { webhookJob } from "./webhook.job.js";

/** One processor per queue; the entry points hand these to startWorkers. */
export const processors = (ctx: AppContext) => ({
  verify: verifyJob(ctx),
  sync: syncJob(ctx),
  webhook: webhookJob(ctx),
  prune: pruneJob(ctx),
  erase: eraseJob(ctx), // erasure
});
