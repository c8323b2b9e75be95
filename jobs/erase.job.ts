import type { AppContext } from "../src/context.js";
import { eraseHistory, type EraseOutcome } from "../src/lifecycle/erase.js";

/** erase: deletes a disconnected connection's history on request, in batches, and records the audit event. */
export const eraseJob =
  (ctx: AppContext) =>
  (data: { connectionId: string }): Promise<EraseOutcome> =>
    eraseHistory(ctx, data.connectionId);
