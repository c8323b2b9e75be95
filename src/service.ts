import { setTimeout as sleep } from "node:timers/promises";
import { processors } from "../jobs/index.js";
import type { Config } from "./config.js";
import type { AppContext } from "./context.js";
import { handleFailure } from "./lifecycle/failures.js";
import { reconcile } from "./lifecycle/reconcile.js";
import { moduleLogger } from "./logger.js";
import { ServiceMetrics } from "./metrics.js";
import { openStores } from "./producer.js";
import { startWorkers } from "./queue/workers.js";
import { ReplicateClient } from "./replicate/client.js";
import { RedisRequestRateCap } from "./replicate/rate-cap.js";
import { holdsToken } from "./repositories/connections.js";
import { PagePrefetcher } from "./sync/prefetch.js";
import { TokenVault } from "./vault.js";
import { sweepWebhooks } from "./webhooks/relay.js";

// Every dependency is built here and handed down (the queue layer knows no lifecycle); main, the test harness and the benchmarks start it.

/** How often each worker process looks for webhooks not yet queued. */
const WEBHOOK_RELAY_INTERVAL_MS = 500;
const log = moduleLogger("service");

/** Runs `task` `ms` after its previous run ended, until the returned stop(), which waits for a run in flight. */
function repeat(ms: number, task: () => Promise<unknown>, failed: string): () => Promise<void> {
  const stopped = new AbortController();
  const loop = (async () => {
    // The sleep rejects once stopped. A failed run (Redis or Postgres away) is tried again by the next.
    while (await sleep(ms, true, { signal: stopped.signal }).catch(() => false)) {
      await task().catch((err: unknown) => log.warn(failed, { error: err }));
    }
  })();
  return async () => {
    stopped.abort();
    await loop;
  };
}

export type Service = Awaited<ReturnType<typeof startService>>;

/** `client.signal` aborts the Replicate requests in flight at shutdown; tests shorten the client's retries. */
export async function startService(
  config: Config,
  options: { workers?: boolean; client?: { signal?: AbortSignal; retryBaseMs?: number; retries?: number } } = {},
) {
  const { db, redis, queues, close: closeStores } = openStores(config, config.sync.concurrency + 4);
  const vault = new TokenVault(config.encryption.keys, config.encryption.currentKeyId);
  const rateCap = new RedisRequestRateCap(redis, config.replicate.requestsPerSecond, config.queuePrefix);
  const replicate = new ReplicateClient({
    ...config.replicate,
    // After a disconnect or a token replacement, the client's own retries stop.
    stillWanted: (token, connectionId) => holdsToken(db, vault, connectionId, token),
    rateCap,
    ...options.client,
  });
  const metrics = new ServiceMetrics(queues, db);
  const prefetcher = new PagePrefetcher(config.sync.concurrency * 4);
  const ctx: AppContext = { config, db, redis, queues, vault, replicate, prefetcher, rateCap, metrics };

  let running: (() => Promise<void>) | null = null;
  const service = {
    ctx,
    /** Makes Redis agree with Postgres, then runs the workers, the reconciler and (webhooks on) the outbox relay. */
    async startWorkers(): Promise<void> {
      if (running) return;
      await reconcile(ctx);
      const workers = startWorkers({
        redis,
        config,
        processors: processors(ctx),
        onFailure: (queue, err, job) => handleFailure(ctx, queue, err, job),
        onFinished: (queue, name, outcome, seconds) => metrics.jobDuration.observe({ queue, name, outcome }, seconds),
      });
      const enqueue = (deliveryId: string) => queues.enqueue("deliver", { deliveryId });
      const loops = [
        // So losing Redis's data never needs a restart.
        repeat(config.jobs.reconcileSeconds * 1000, () => reconcile(ctx), "reconciliation failed; trying again later"),
        ...(config.webhooks
          ? [repeat(WEBHOOK_RELAY_INTERVAL_MS, () => sweepWebhooks(db, enqueue), "webhook relay sweep failed; retrying")]
          : []),
      ];
      running = async () => {
        await Promise.all(loops.map((stop) => stop()));
        await workers.close();
      };
    },
    /** Stops taking jobs; in-flight jobs finish (or are released to another worker). */
    async stopWorkers(): Promise<void> {
      await running?.();
      running = null;
    },
    async close(): Promise<void> {
      await service.stopWorkers();
      await closeStores();
    },
  };
  if (options.workers) await service.startWorkers();
  return service;
}
