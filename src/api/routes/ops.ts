import { createRequire } from "node:module";
import path from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";

export const QUEUE_DASHBOARD_PATH = "/admin/queues";

/** The folder holding package.json, from src/… under tsx and from dist/src/… when built. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
}

/** GET /metrics: Prometheus text format. */
export async function metricsRoute(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const body = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(body);
  });
}

/**
 * The support page (/ui/): plain HTML and JS shipped in src/api/ui, plus Chart.js served from the
 * installed package, so nothing is fetched from the internet.
 */
export async function supportPage(app: FastifyInstance): Promise<void> {
  const chartDist = path.dirname(createRequire(import.meta.url).resolve("chart.js"));
  await app.register(fastifyStatic, { root: path.join(packageRoot(), "src/api/ui"), prefix: "/ui/", decorateReply: false });
  await app.register(fastifyStatic, {
    root: chartDist,
    prefix: "/ui/vendor/chart/",
    decorateReply: false,
    allowedPath: (p) => p === "/chart.umd.min.js",
  });
  app.get("/ui", { schema: { hide: true } }, (_request, reply) => reply.redirect("/ui/"));
}

/** bull-board over both queues, for whoever runs the service. */
export async function queueDashboard(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({ queues: [new BullMQAdapter(ctx.queues.verify), new BullMQAdapter(ctx.queues.sync)], serverAdapter });
  await app.register(serverAdapter.registerPlugin(), { prefix: QUEUE_DASHBOARD_PATH });
}
