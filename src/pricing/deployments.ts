import type { Db } from "../db/client.js";
import { moduleLogger } from "../logger.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { deploymentsDue, storeDeployments } from "../repositories/deployments.js";

// An account with more deployments than this many pages is not expected; the cap bounds a server
// that keeps answering with `next`.
const MAX_PAGES = 50;

/**
 * Reads the connection's deployments (hardware SKU, instance bounds, model/version of the current
 * release) and stores them. Without `force`, at most once per UTC day: verification forces it, each
 * sync page calls it and reads Replicate only on the first page of a new day. Errors propagate like
 * those of a predictions page (same failure policy).
 */
export async function refreshDeployments(
  ctx: { db: Db; replicate: ReplicateClient },
  connectionId: string,
  token: string,
  options: { force?: boolean; now?: Date } = {},
): Promise<void> {
  const now = options.now ?? new Date();
  if (!options.force && !(await deploymentsDue(ctx.db, connectionId, now))) return;
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
