import helmet from "@fastify/helmet";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { AppContext } from "../context.js";
import { AppError, ConflictError, NotFoundError, ServiceUnavailableError, ValidationError } from "../errors.js";
import { moduleLogger } from "../logger.js";
import { requireCredential } from "./auth.js";
import { connectionRoutes } from "./routes/connections.js";
import { deploymentRoutes } from "./routes/deployments.js";
import { priceRoutes } from "./routes/prices.js";
import { metricsRoute, queueDashboard, supportPage } from "./routes/ops.js";
import { healthRoutes } from "./routes/health.js";
import { HELMET_OPTIONS, refuseCrossSiteWrites } from "./security.js";
import { usageRoutes } from "./routes/usage.js";

/**
 * The HTTP API: zod-validated input, a credential required on every route but the probes (src/api/auth.ts), JSON
 * errors with a reason. With `opsOnly` (ROLE=worker) it serves just the probes and /metrics.
 */
export async function buildServer(ctx: AppContext, options: { opsOnly?: boolean } = {}): Promise<FastifyInstance> {
  const log = moduleLogger("api");
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: { title: "replicate-usage-sync", version: "0.1.0", description: "Replicate prediction usage as daily rows." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  await app.register(helmet, HELMET_OPTIONS);
  app.addHook("onRequest", refuseCrossSiteWrites);
  app.addHook("onRequest", requireCredential(ctx.config.http));

  app.setErrorHandler((err, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => `${v.instancePath.replace(/^\//, "").replace(/\//g, ".") || "input"}: ${v.message}`);
      return reply.code(400).send({ error: "validation_failed", message: `invalid ${err.validationContext ?? "input"}`, issues });
    }
    if (err instanceof ValidationError) return reply.code(400).send({ error: err.code, message: err.message, issues: err.issues });
    if (err instanceof NotFoundError) return reply.code(404).send({ error: err.code, message: err.message });
    if (err instanceof ConflictError) return reply.code(409).send({ error: err.code, message: err.message });
    if (err instanceof ServiceUnavailableError) return reply.code(503).send({ error: err.code, message: err.message });
    if (err instanceof AppError) return reply.code(502).send({ error: err.code, message: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: "bad_request", message: (err as Error).message });
    log.error("request failed", { method: request.method, url: request.url, error: err });
    return reply.code(500).send({ error: "internal", message: "internal error; see the service logs" });
  });

  await app.register(healthRoutes(ctx));
  await metricsRoute(app, ctx);
  if (options.opsOnly) return app;
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await app.register(connectionRoutes(ctx));
  await app.register(usageRoutes(ctx));
  await app.register(deploymentRoutes(ctx));
  await app.register(priceRoutes(ctx));
  await supportPage(app);
  await queueDashboard(app, ctx);
  return app;
}
