import type { Db } from "../db/client.js";
import { DAY_MS } from "../domain/calendar.js";
import { moduleLogger } from "../logger.js";
import { pruneLedger } from "../repositories/usage.js";

/** Kept beyond BACKFILL_DAYS: covers clock skew between processes and a run that started just before the prune. */
export const PRUNE_MARGIN_DAYS = 2;

/** Terminal predictions older than any run can re-read are deleted (usage keeps their totals). */
export async function pruneStep(db: Db, backfillDays: number, now = new Date()): Promise<{ deleted: number; cutoff: string }> {
  const cutoff = new Date(now.getTime() - (backfillDays + PRUNE_MARGIN_DAYS) * DAY_MS);
  const deleted = await pruneLedger(db, cutoff);
  moduleLogger("prune").info("ledger pruned", { deleted, cutoff: cutoff.toISOString() });
  return { deleted, cutoff: cutoff.toISOString() };
}
