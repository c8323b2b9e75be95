import { setMaxListeners } from "node:events";
import { buildServer } from "./api/server.js";
import { loadConfig } from "./cli/local-secrets.js";
import { ConfigError } from "./config.js";
import { logger } from "./logger.js";
import { startService } from "./service.js";

// ROLE=all (default) runs the API and the workers in one process; ROLE=api or ROLE=worker runs one
// side, so workers scale out as separate processes on the same Redis and Postgres.

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    logger.error(err.message, { problems: err.problems });
    process.exit(78); // EX_CONFIG
  }
  throw err;
}
logger.level = config.logLevel;

// Aborted first at shutdown, so a job waiting on a hanging provider does not hold the exit up.
const shutdownSignal = new AbortController();
// Every Replicate request in flight listens to it (jobs × windows × read-ahead): node's default of 10 is no leak bound here.
setMaxListeners(0, shutdownSignal.signal);
const service = await startService(config, { workers: config.role !== "api", client: { signal: shutdownSignal.signal } });
// A worker process serves only the probes and /metrics (its job durations and 429 counts).
const server = await buildServer(service.ctx, { opsOnly: config.role === "worker" });
const address = await server.listen({ host: config.http.host, port: config.http.port });
logger.info(config.role === "worker" ? "probes and metrics listening" : "API listening", { address });
logger.info("service started", { role: config.role, env: config.env });

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("shutting down", { signal });
  // In-flight provider requests end now; their jobs fail this attempt and are retried later.
  shutdownSignal.abort();
  // Stop taking requests and jobs first; in-flight jobs finish (or are released to another worker).
  await server.close();
  await service.close();
  logger.info("stopped");
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
