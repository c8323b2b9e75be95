import { createRequire } from "node:module";
import path from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import type { ControllerHandlerReturnType } from "@bull-board/api/typings/app";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../../context.js";
import { moduleLogger } from "../../logger.js";

const QUEUE_DASHBOARD_PATH = "/admin/queues";

/** The folder holding package.json, from src/… under tsx and from dist/src/… when built. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
}

/** The support page (/ui/) with Chart.js served from the installed package, so nothing is fetched from the internet. */
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
