import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { AppContext } from "../../context.js";
import { ping } from "../../db/client.js";

/** Liveness (the process answers) and readiness (Postgres and Redis answer). */
export function healthRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/healthz", async () => ({ status: "ok" }));
    app.get("/readyz", async (_request, reply) => {
      const [postgres, redis] = await Promise.all([
        ping(ctx.db).then(
          () => "ok",
          () => "unreachable",
        ),
        ctx.redis.ping().then(
          () => "ok",
          () => "unreachable",
        ),
      ]);
      const ready = postgres === "ok" && redis === "ok";
      return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", postgres, redis });
    });
  };
}
