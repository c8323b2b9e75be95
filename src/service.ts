import { processors } from "../jobs/index.js";
import type { Config } from "./config.js";
import type { AppContext } from "./context.js";
import { applyFailure, classify } from "./lifecycle/failures.js";
import { keepReconciled, reconcile } from "./lifecycle/reconcile.js";
import { ServiceMetrics } from "./metrics.js";
import { startWorkers } from "./queue/workers.js";
import { ReplicateClient } from "./replicate/client.js";
import { RedisRequestRateCap } from "./replicate/rate-cap.js";
import { holdsToken } from "./repositories/connections.js";
import { openStores } from "./stores.js";
import { PagePrefetcher } from "./sync/prefetch.js";
import { TokenVault } from "./vault.js";
import { WebhookRelay } from "./webhooks/relay.js";

// Where the service is put together: every dependency is built here and handed down, so the queue
// layer knows no lifecycle and the context no repository. src/main.ts, the test harness and the
// benchmarks all start the service through startService.

/** How often each worker process looks for webhooks not yet queued. */
const WEBHOOK_RELAY_INTERVAL_MS = 500;

export interface Service {
  ctx: AppContext;
  /** Makes Redis agree with Postgres, then runs the workers, the reconciler and (webhooks on) the outbox relay. */
  startWorkers(): Promise<void>;
  /** Stops taking jobs; in-flight jobs finish (or are released to another worker). */
  stopWorkers(): Promise<void>;
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Start the workers now (ROLE=all and ROLE=worker). */
  workers?: boolean;
  /** Aborts the Replicate requests in flight (shutdown); tests shorten the client's retries. */
  client?: { signal?: AbortSignal; retryBaseMs?: number; retries?: number };
}

export async function startService(config: Config, options: ServiceOptions = {}): Promise<Service> {
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
  const ctx: AppContext = {
    config,
    db,
    redis,
    queues,
    vault,
    replicate,
    rateCap,
    metrics,
    prefetcher: new PagePrefetcher(config.sync.concurrency * 4),
  };
  const failureDeps = {
    db,
    vault,
    removeScheduler: (id: string) => queues.removeScheduler(id),
    onRateLimited: (source: string) => metrics.rateLimited.inc({ source }),
  };
  const relay = config.webhooks && new WebhookRelay(db, (id) => queues.enqueue("deliver", { deliveryId: id }), WEBHOOK_RELAY_INTERVAL_MS);

  let running: (() => Promise<void>) | null = null;
  const service: Service = {
    ctx,
    async startWorkers() {
      if (running) return;
      await reconcile(ctx);
      const workers = startWorkers({
        redis,
        config,
        processors: processors(ctx),
        onFailure: (queue, err, job) => {
          const attempt = { queue, ...job, backoffMs: config.jobs.backoffMs };
          const failed = { connectionId: job.data.connectionId, runId: job.data.runId, jobId: job.jobId, attemptsMade: job.attemptsMade };
          return applyFailure(failureDeps, classify(err, attempt), err, failed);
        },
        onFinished: (queue, name, outcome, seconds) => metrics.jobDuration.observe({ queue, name, outcome }, seconds),
      });
      relay?.start();
      const reconciler = keepReconciled(ctx, config.jobs.reconcileSeconds);
      running = async () => {
        reconciler.stop();
        await relay?.stop();
        await workers.close();
      };
    },
    async stopWorkers() {
      await running?.();
      running = null;
    },
    async close() {
      await service.stopWorkers();
      await closeStores();
    },
  };
  if (options.workers) await service.startWorkers();
  return service;
}
