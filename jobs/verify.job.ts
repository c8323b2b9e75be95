import type { Job } from "bullmq";
import type { AppContext } from "../src/context.js";
import { verifyConnection } from "../src/lifecycle/verify.js";
import { handleJobFailure } from "../src/queue/failure-policy.js";
import { verifyJobData, type VerifyJobData } from "../src/queue/queues.js";

/** verify: checks a new or replaced token and starts syncing. */
export function verifyProcessor(ctx: AppContext) {
  return async (job: Job<VerifyJobData>, token?: string) => {
    const { connectionId } = verifyJobData.parse(job.data);
    try {
      return await verifyConnection(ctx, connectionId, job.id);
    } catch (err) {
      return handleJobFailure(ctx, job, token, err);
    }
  };
}
