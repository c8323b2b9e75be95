import type { AppContext } from "../src/context.js";
import { runTick, runWindowSlice, type JobProgress, type SyncStepResult } from "../src/lifecycle/sync-step.js";

/** sync: a tick starts or continues a run; a slice job reads and writes one window for a while and chains the next slice. */
export const syncJob =
  (ctx: AppContext) =>
  (data: { connectionId: string; runId?: string; window?: string; page?: number }, job: JobProgress): Promise<SyncStepResult> =>
    data.runId && data.window && data.page
      ? runWindowSlice(ctx, { connectionId: data.connectionId, runId: data.runId, window: data.window, page: data.page }, job)
      : runTick(ctx, data.connectionId, job.id);
