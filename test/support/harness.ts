import { randomBytes } from "node:crypto";
import { parseConfig, type Config } from "../../src/config.js";
import type { AppContext } from "../../src/context.js";
import { startService, type Service } from "../../src/service.js";
import { FakeReplicate } from "../../dev/fake-replicate.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";
export { waitFor } from "../../dev/wait-for.js";
import { REDIS_URL, deleteKeys, uniquePrefix } from "./redis.js";

export const API_TOKEN = "test-api-token-0123456789abcdef";
/** The read-only credential support staff use. */
export const SUPPORT_TOKEN = "test-support-token-0123456789abcdef";

export interface Harness {
  t: TestDatabase;
  fake: FakeReplicate;
  /** The environment the config was parsed from; worker processes are started with the same. */
  env: Record<string, string>;
  config: Config;
  ctx: AppContext;
  /** As src/main.ts runs it: stop and start its workers (with the reconciler and relay beside them). */
  service: Service;
  close(): Promise<void>;
}

/** A fresh database, a unique queue prefix, a fake Replicate and (optionally) running workers. */
export async function createHarness(env: Record<string, string> = {}, options: { workers?: boolean } = {}): Promise<Harness> {
  const t = await createTestDatabase(20);
  const fake = new FakeReplicate();
  const baseUrl = await fake.start();
  const serviceEnv: Record<string, string> = {
    NODE_ENV: "test",
    DATABASE_URL: t.url,
    REDIS_URL,
    QUEUE_PREFIX: uniquePrefix(),
    TOKEN_ENCRYPTION_KEYS: `test:${randomBytes(32).toString("base64")}`,
    API_TOKEN,
    SUPPORT_TOKEN,
    REPLICATE_API_BASE_URL: baseUrl,
    REPLICATE_REQUESTS_PER_SECOND: "1000",
    REPLICATE_TIMEOUT_MS: "3000",
    WORKER_CONCURRENCY: "4",
    JOB_BACKOFF_MS: "20",
    JOB_ATTEMPTS: "3",
    ...env,
  };
  const config = parseConfig(serviceEnv);
  const service = await startService(config, { workers: options.workers !== false, client: { retryBaseMs: 5, retries: 1 } });
  return {
    t,
    fake,
    env: serviceEnv,
    config,
    ctx: service.ctx,
    service,
    async close() {
      await service.stopWorkers();
      await deleteKeys(service.ctx.redis, config.queuePrefix);
      await service.close();
      await fake.close();
      await t.drop();
    },
  };
}
