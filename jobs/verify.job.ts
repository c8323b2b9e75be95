import type { AppContext } from "../src/context.js";
import { verifyConnection } from "../src/lifecycle/verify.js";

/** verify: checks a new or replaced token and starts syncing. */
export const verifyJob =
  (ctx: AppContext) =>
  (data: { connectionId: string }, job: { id?: string }): Promise<string> =>
    verifyConnection(ctx, data.connectionId, job.id);
