import type { Job } from "bullmq";
import type { AppContext } from "../src/context.js";
import { runPage, runTick } from "../src/lifecycle/sync-step.js";
import { handleJobFailure } from "../src/queue/failure-policy.js";
import { syncJobData, type SyncJobData } from "../src/queue/queues.js";

/** sync: a tick starts or continues a run; a page job writes one page and chains the next. */
export function syncProcessor(ctx: AppContext) {
  return async (job: Job<SyncJobData>, token?: string) => {
    const data = syncJobData.parse(job.data);
    try {
      return data.runId && data.page
        ? await runPage(ctx, { connectionId: data.connectionId, runId: data.runId, page: data.page }, job)
        : await runTick(ctx, data.connectionId, job.id);
    } catch (err) {
      return handleJobFailure(ctx, job, token, err);
    }
  };
}
