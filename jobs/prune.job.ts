import type { AppContext } from "../src/context.js";
import { pruneStep } from "../src/lifecycle/prune.js";

/** prune: deletes ledger rows no run can read again (scheduled daily). */
export const pruneJob = (ctx: AppContext) => (): Promise<{ deleted: number; cutoff: string }> =>
  pruneStep(ctx.db, ctx.config.sync.backfillDays);
