import { createRequire } from "node:module";
import path from "node:path";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import type { ControllerHandlerReturnType } from "@bull-board/api/typings/app";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { ping } from "../../db/client.js";
import { moduleLogger } from "../../logger.js";
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

export const documentRoute = op({
  route: "GET /openapi.json",
  operationId: "getOpenApiDocument",
  summary: "This API's OpenAPI 3.1 document",
  response: responses({ 200: z.record(z.string(), z.unknown()).describe("the OpenAPI document") }, [400, 401, 403]),
  handler: async (_r, reply) => reply.server.swagger(),
});

const QUEUE_DASHBOARD_PATH = "/admin/queues";

/** The support page (/ui/) with Chart.js served from the installed package, so nothing is fetched from the internet. */
export async function supportPage(app: FastifyInstance): Promise<void> {
  // The folder holding package.json: src/… under tsx, dist/src/… when built.
  let root = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(root, "package.json"))) root = path.dirname(root);
  const chartDist = path.dirname(createRequire(import.meta.url).resolve("chart.js"));
  await app.register(fastifyStatic, { root: path.join(root, "src/api/ui"), prefix: "/ui/", decorateReply: false });
  await app.register(fastifyStatic, {
    root: chartDist,
    prefix: "/ui/vendor/chart/",
    decorateReply: false,
    allowedPath: (p) => p === "/chart.umd.min.js",
  });
  app.get("/ui", { schema: { hide: true } }, (_request, reply) => reply.redirect("/ui/"));
}

/** bull-board's own handler answers with error.stack (server paths) when NODE_ENV=development. */
function dashboardError(error: Error & { statusCode?: number }): ControllerHandlerReturnType {
  const status = error.statusCode ?? 500;
  // bull-board types only a few 4xx codes: 404 stays, any other client error is a 400.
  if (status >= 400 && status < 500) return { status: status === 404 ? 404 : 400, body: { error: "bad_request", message: error.message } };
  moduleLogger("api").error("queue dashboard request failed", { error });
  return { status: 500, body: { error: "internal", message: "internal error; see the service logs" } };
}

/** bull-board's page links Google Fonts; dropping links to other hosts keeps it working offline (system fonts). */
const EXTERNAL_LINK = /<link\b[^>]*\bhref="(?:https?:)?\/\/[^"]*"[^>]*>/g;

/** bull-board over every queue of the registry, for whoever runs the service. */
export async function queueDashboard(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({ queues: ctx.queues.all().map((queue) => new BullMQAdapter(queue)), serverAdapter });
  serverAdapter.setErrorHandler(dashboardError);
  await app.register(async (scope) => {
    scope.addHook("onSend", async (_request, reply, payload) =>
      typeof payload === "string" && String(reply.getHeader("content-type")).startsWith("text/html")
        ? payload.replace(EXTERNAL_LINK, "")
        : payload,
    );
    await scope.register(serverAdapter.registerPlugin(), { prefix: QUEUE_DASHBOARD_PATH });
  });
}
