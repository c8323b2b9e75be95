import type { Db } from "../db/client.js";
import { moduleLogger } from "../logger.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { Deployment } from "../replicate/schemas.js";
import { DEPLOYMENTS_ENDPOINT, recordDeploymentsEvent, storeDeployments } from "../repositories/deployments.js";

// More pages of deployments than this are not expected: the cap bounds a server that keeps answering with `next`.
const MAX_PAGES = 50;

/**
 * Called when a run starts and its read_run says they are due (not read on this UTC day, or failing). Deployments only price usage,
 * so no failure of theirs is the run's: a streak of failures is one `enrichment_failed`, then `enrichment_recovered`.
 */
export async function refreshDeployments(
  ctx: { db: Db; replicate: ReplicateClient },
  connectionId: string,
  token: string,
  options: { now?: Date; jobId?: string } = {},
): Promise<void> {
  const now = options.now ?? new Date();
  const log = moduleLogger("deployments", { connectionId, jobId: options.jobId });
  const base = { connectionId, jobId: options.jobId, detail: { endpoint: DEPLOYMENTS_ENDPOINT } };
  const deployments: Deployment[] = [];
  try {
    let next: string | null = null;
    for (let page = 0; page < MAX_PAGES && (page === 0 || next); page++) {
      const result = await ctx.replicate.listDeployments(token, next);
      deployments.push(...result.results);
      next = result.next;
    }
  } catch (err) {
    const httpStatus = (err as { httpStatus?: number }).httpStatus ?? null;
    log.warn("deployments not read; the run goes on without them", { error: err, httpStatus });
    return recordDeploymentsEvent(ctx.db, {
      ...base,
      kind: "enrichment_failed",
      message: `could not read ${DEPLOYMENTS_ENDPOINT} (${httpStatus === null ? "no HTTP answer" : `HTTP ${httpStatus}`}): ${err instanceof Error ? err.message : String(err)}. Usage still syncs; predictions made through deployments are unpriced until a later run reads it.`,
      httpStatus,
      detail: { ...base.detail, httpStatus },
    });
  }
  const recovered = {
    ...base,
    kind: "enrichment_recovered" as const,
    message: `${DEPLOYMENTS_ENDPOINT} answers again; predictions made through deployments are priced from it`,
  };
  if (await storeDeployments(ctx.db, connectionId, deployments, now, recovered))
    log.info("deployments refreshed", { deployments: deployments.length });
}
