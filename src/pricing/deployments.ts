import type { Db } from "../db/client.js";
import { RateLimitError } from "../errors.js";
import { moduleLogger } from "../logger.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { deploymentsCheckedAt, storeDeployments } from "../repositories/deployments.js";
import { utcDay } from "../domain/calendar.js";

// An account with more deployments than this many pages is not expected; the cap bounds a server
// that keeps answering with `next`.
const MAX_PAGES = 50;

/**
 * Reads the connection's deployments (hardware SKU, instance bounds, model/version of the current
 * release) and stores them. Without `force`, at most once per UTC day: verification forces it, each
 * sync page calls it and reads Replicate only on the first page of a new day. Errors propagate like
 * those of a predictions page (same failure policy), except a rate limit with `deferWhenThrottled`:
 * verification must not be retried for it (its retry would read the account again, and a token
 * paced to one request per interval would never fit both), and the first sync page reads them instead.
 * A caller that has already read the connection row passes its `checkedAt`, saving the look-up.
 */
export async function refreshDeployments(
  ctx: { db: Db; replicate: ReplicateClient },
  connectionId: string,
  token: string,
  options: { force?: boolean; now?: Date; deferWhenThrottled?: boolean; checkedAt?: Date | null } = {},
): Promise<void> {
  const now = options.now ?? new Date();
  if (!options.force) {
    const checkedAt = options.checkedAt === undefined ? await deploymentsCheckedAt(ctx.db, connectionId) : options.checkedAt;
    // At most once per UTC day.
    if (checkedAt && utcDay(checkedAt) >= utcDay(now)) return;
  }
  try {
    await readAndStore(ctx, connectionId, token, now);
  } catch (err) {
    if (!(options.deferWhenThrottled && err instanceof RateLimitError)) throw err;
    moduleLogger("deployments", { connectionId }).info("deployments deferred to the next sync page: rate limited");
  }
}

async function readAndStore(ctx: { db: Db; replicate: ReplicateClient }, connectionId: string, token: string, now: Date): Promise<void> {
  const deployments: Deployment[] = [];
  let next: string | null = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await ctx.replicate.listDeployments(token, next);
    deployments.push(...result.results);
    next = result.next;
    if (!next) break;
  }
  await storeDeployments(ctx.db, connectionId, deployments, now);
  moduleLogger("deployments", { connectionId }).info("deployments refreshed", { deployments: deployments.length });
}
