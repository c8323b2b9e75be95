import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { ping } from "../../db/client.js";
import { noQuery, responses } from "../schemas.js";

const reachable = z.enum(["ok", "unreachable"]);
const readiness = z.object({ status: z.enum(["ready", "not_ready"]), postgres: reachable, redis: reachable });
const probe = { tags: ["operations"], querystring: noQuery, security: [] };

/** Liveness (the process answers) and readiness (Postgres and Redis answer). */
export function healthRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/healthz",
      {
        schema: {
          ...probe,
          operationId: "getLiveness",
          summary: "Liveness: the process answers (no credential needed)",
          response: responses({ 200: z.object({ status: z.literal("ok") }).describe("alive") }, [400]),
        },
      },
      async () => ({ status: "ok" as const }),
    );
    app.get(
      "/readyz",
      {
        schema: {
          ...probe,
          operationId: "getReadiness",
          summary: "Readiness: Postgres and Redis answer (no credential needed)",
          response: responses(
            {
              200: readiness.describe("ready").meta({ examples: [{ status: "ready", postgres: "ok", redis: "ok" }] }),
              503: readiness
                .describe("Postgres or Redis does not answer")
                .meta({ examples: [{ status: "not_ready", postgres: "ok", redis: "unreachable" }] }),
            },
            [400],
          ),
        },
      },
      async (_request, reply) => {
        const [postgres, redis] = await Promise.all([
          ping(ctx.db).then(
            () => "ok" as const,
            () => "unreachable" as const,
          ),
          ctx.redis.ping().then(
            () => "ok" as const,
            () => "unreachable" as const,
          ),
        ]);
        const ready = postgres === "ok" && redis === "ok";
        return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", postgres, redis });
      },
    );
  };
}
