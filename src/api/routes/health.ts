import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { ping } from "../../db/client.js";
import { op } from "../operations.js";
import { responses } from "../schemas.js";

const reachable = z.enum(["ok", "unreachable"]);
const readiness = z.object({ status: z.enum(["ready", "not_ready"]), postgres: reachable, redis: reachable });

const READY_TIMEOUT_MS = 1_500;

/** What a worker process serves too: liveness, readiness (Postgres and Redis answer within 1.5 s) and /metrics. */
export const healthRoutes = (ctx: AppContext) => [
  op({
    route: "GET /healthz",
    operationId: "getLiveness",
    summary: "Liveness: the process answers (no credential needed)",
    security: [],
    response: responses({ 200: z.object({ status: z.literal("ok") }).describe("alive") }, [400]),
    handler: async () => ({ status: "ok" }),
  }),
  op({
    route: "GET /readyz",
    operationId: "getReadiness",
    summary: "Readiness: Postgres and Redis answer (no credential needed)",
    security: [],
    response: responses(
      {
        200: readiness.describe("ready").meta({ examples: [{ status: "ready", postgres: "ok", redis: "ok" }] }),
        503: readiness
          .describe("Postgres or Redis does not answer")
          .meta({ examples: [{ status: "not_ready", postgres: "ok", redis: "unreachable" }] }),
      },
      [400],
    ),
    handler: async (_r, reply) => {
      const [postgres, redis] = await Promise.all([answers(ping(ctx.db)), answers(ctx.queues.ping())]);
      const ready = postgres === "ok" && redis === "ok";
      return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", postgres, redis });
    },
  }),
  op({
    route: "GET /metrics",
    operationId: "getMetrics",
    summary: "Prometheus metrics (text exposition format); the API token only",
    response: responses({ 200: { description: "the metrics", content: { "text/plain": { schema: z.string() } } } }, [400, 401, 403]),
    handler: async (_r, reply) => reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
  }),
];

/** "ok", or "unreachable" when the check fails or takes longer than a probe may wait (the timer holds no exit up). */
function answers(check: Promise<unknown>): Promise<"ok" | "unreachable"> {
  const late = sleep(READY_TIMEOUT_MS, undefined, { ref: false }).then(() => Promise.reject(new Error("timed out")));
  return Promise.race([check, late]).then(
    () => "ok",
    () => "unreachable",
  );
}
