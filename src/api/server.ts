import { randomUUID } from "node:crypto";
import helmet from "@fastify/helmet";
import swagger, { type SwaggerTransformObject } from "@fastify/swagger";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { AppContext } from "../context.js";
import { AppError, ConflictError, NotFoundError, QueryTimeoutError, ServiceUnavailableError, ValidationError } from "../errors.js";
import { logScope, moduleLogger } from "../logger.js";
import { connectionRoutes, erasureRoutes, workspaceRoutes } from "./routes/connections.js";
import { documentRoute, healthRoutes, queueDashboard, supportPage } from "./routes/ops.js";
import { mount } from "./operations.js";
import { errorReply } from "./schemas.js";
import { HELMET_OPTIONS, refuseCrossSiteWrites, requireCredential } from "./security.js";
import { priceRoutes, usageRoutes } from "./routes/usage.js";

const REQUEST_ID_HEADER = "x-request-id";
/** A caller's request id is kept when it is this tame (it reaches logs and bodies); anything else gets a new one. */
const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type Document = Record<string, unknown> & {
  paths?: Record<string, Record<string, { parameters?: unknown[]; responses?: Record<string, { headers?: Record<string, unknown> }> }>>;
  components?: Record<string, unknown>;
};

/** An x-request-id parameter and response header on every operation, added here: the zod transform keeps no response headers. */
const withRequestIds: SwaggerTransformObject = (document) => {
  if (!("openapiObject" in document)) return document.swaggerObject;
  const doc = document.openapiObject as Document;
  for (const operations of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      operation.parameters = [...(operation.parameters ?? []), { $ref: "#/components/parameters/RequestId" }];
      for (const response of Object.values(operation.responses ?? {})) {
        response.headers = { ...response.headers, "x-request-id": { $ref: "#/components/headers/RequestId" } };
      }
    }
  }
  const description = "Names the request in the answer, the error body (requestId) and the service's log lines.";
  doc.components = {
    ...doc.components,
    parameters: {
      RequestId: {
        in: "header",
        name: REQUEST_ID_HEADER,
        required: false,
        description: `${description} Kept when 1–128 of [A-Za-z0-9._:-], else replaced by a new UUID.`,
        schema: { type: "string", pattern: CALLER_REQUEST_ID.source },
      },
    },
    headers: { RequestId: { description, schema: { type: "string" } } },
  };
  return doc as typeof document.openapiObject;
};

/** The reason fastify's own errors (body parsing, limits) get in the error shape. */
function fastifyErrorCode(err: FastifyError, status: number): string {
  if (status === 413) return "payload_too_large";
  if (status === 415) return "unsupported_media_type";
  return err.code?.startsWith("FST_ERR_CTP_") ? "invalid_body" : "bad_request";
}

/** The HTTP API; with `opsOnly` (ROLE=worker) just the probes and /metrics. */
export async function buildServer(
  ctx: AppContext,
  options: {
    opsOnly?: boolean;
    /** Sees each route as it is registered (the OpenAPI test checks each is documented). */ onRoute?: (route: RouteOptions) => void;
  } = {},
): Promise<FastifyInstance> {
  const log = moduleLogger("api");
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // A path parameter is a workspace id (200 characters, each up to 12 when percent-encoded) or shorter.
    routerOptions: { maxParamLength: 2_400 },
    // A URL the router cannot read (bad percent-encoding, a parameter over that) answers in the one error shape.
    frameworkErrors: (err, request, reply: FastifyReply) =>
      reply.code(err.statusCode ?? 400).send(errorReply(request, "bad_request", err.message)),
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers[REQUEST_ID_HEADER];
      return typeof given === "string" && CALLER_REQUEST_ID.test(given) ? given : randomUUID();
    },
  }).withTypeProvider<ZodTypeProvider>();
  if (options.onRoute) app.addHook("onRoute", options.onRoute);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Every answer names its request, and every line logged while serving it carries the same id. The
  // scope is entered again after the body is read, whose stream events run outside the first one.
  const enterScope = (request: FastifyRequest, _reply: FastifyReply, done: () => void) => logScope.run({ requestId: request.id }, done);
  app.addHook("onRequest", enterScope);
  app.addHook("preValidation", enterScope);
  // Fastify answers requests that arrive while closing with Connection: close, but one already in
  // a handler would leave its keep-alive socket open, and close() would wait out keepAliveTimeout (72 s).
  let draining = false;
  app.addHook("preClose", async () => {
    draining = true;
  });
  app.addHook("onSend", async (request, reply, payload) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    if (draining) reply.header("connection", "close");
    return payload;
  });
  app.addHook("onResponse", async (request, reply) => {
    log.http("request", { requestId: request.id, method: request.method, route: request.routeOptions.url, status: reply.statusCode });
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "replicate-usage-sync",
        version: "0.1.0",
        description:
          "Replicate usage (predictions and trainings) as rows per day in any time zone, from UTC quarter hours. Every error, unknown routes included, is `{error, message, issues?, requestId}`; " +
          "every answer carries `x-request-id` (the caller's when well-formed, else a new one). Unknown query parameters are a 400.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" }, basic: { type: "http", scheme: "basic" } } },
      security: [{ bearer: [] }, { basic: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: withRequestIds,
  });

  await app.register(helmet, HELMET_OPTIONS);
  app.addHook("onRequest", refuseCrossSiteWrites);
  app.addHook("onRequest", requireCredential(ctx.config.http));

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorReply(request, "not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );
  app.setErrorHandler((err, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => `${v.instancePath.replace(/^\//, "").replace(/\//g, ".") || "input"}: ${v.message}`);
      return reply.code(400).send(errorReply(request, "validation_failed", `invalid ${err.validationContext ?? "input"}`, issues));
    }
    if (err instanceof ValidationError) return reply.code(400).send(errorReply(request, err.code, err.message, err.issues));
    if (err instanceof NotFoundError) return reply.code(404).send(errorReply(request, err.code, err.message));
    if (err instanceof ConflictError) return reply.code(409).send(errorReply(request, err.code, err.message));
    if (err instanceof ServiceUnavailableError) return reply.code(503).send(errorReply(request, err.code, err.message));
    if (err instanceof QueryTimeoutError) return reply.code(504).send(errorReply(request, err.code, err.message));
    // The client went away and its query was cancelled: no one reads this answer.
    if (reply.raw.destroyed) return reply.code(499).send(errorReply(request, "client_closed", "the client closed the request"));
    if (err instanceof AppError) return reply.code(502).send(errorReply(request, err.code, err.message));
    const status = (err as FastifyError).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send(errorReply(request, fastifyErrorCode(err as FastifyError, status), (err as Error).message));
    }
    log.error("request failed", { requestId: request.id, method: request.method, url: request.url, error: err });
    return reply.code(500).send(errorReply(request, "internal", "internal error; see the service logs"));
  });

  mount(app, ["operations"], healthRoutes(ctx));
  if (options.opsOnly) return app;
  mount(app, ["operations"], [documentRoute]);
  mount(app, ["connections"], connectionRoutes(ctx));
  mount(app, ["usage"], usageRoutes(ctx));
  mount(app, ["workspaces"], workspaceRoutes(ctx));
  mount(app, ["prices"], priceRoutes(ctx));
  mount(app, ["erasure"], erasureRoutes(ctx));
  await supportPage(app);
  await queueDashboard(app, ctx);
  return app;
}
