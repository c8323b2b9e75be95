import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { AppContext } from "../../context.js";
import { ping } from "../../db/client.js";

const READY_TIMEOUT_MS = 1_500;

/** Liveness (the process answers) and readiness (Postgres and Redis answer within 1.5 s). */
export function healthRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/healthz", async () => ({ status: "ok" }));
    app.get("/readyz", async (_request, reply) => {
      const [postgres, redis] = await Promise.all([answers(ping(ctx.db)), answers(ctx.queues.ping())]);
      const ready = postgres === "ok" && redis === "ok";
      return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", postgres, redis });
    });
  };
}

/** "ok", or "unreachable" when the check fails or takes longer than a probe may wait. */
function answers(check: Promise<unknown>): Promise<"ok" | "unreachable"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out")), READY_TIMEOUT_MS);
  });
  return Promise.race([check, late])
    .then(
      () => "ok" as const,
      () => "unreachable" as const,
    )
    .finally(() => clearTimeout(timer));
}
