import type { AppContext } from "../src/context.js";
import { runPage, runTick, type JobProgress, type SyncStepResult } from "../src/lifecycle/sync-step.js";

/** sync: a tick starts or continues a run; a page job writes one page and chains the next. */
export const syncJob =
  (ctx: AppContext) =>
  (data: { connectionId: string; runId?: string; page?: number }, job: JobProgress): Promise<SyncStepResult> =>
    data.runId && data.page
      ? runPage(ctx, { connectionId: data.connectionId, runId: data.runId, page: data.page }, job)
      : runTick(ctx, data.connectionId, job.id);
