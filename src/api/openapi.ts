import type { SwaggerTransformObject } from "@fastify/swagger";
import { z } from "zod";
import { op } from "./operations.js";
import { responses } from "./schemas.js";

type Document = Record<string, unknown> & {
  paths?: Record<string, Record<string, { parameters?: unknown[]; responses?: Record<string, { headers?: Record<string, unknown> }> }>>;
  components?: Record<string, unknown>;
};

/** An x-request-id parameter and response header on every operation, added here: the zod transform keeps no response headers. */
export const withRequestIds: SwaggerTransformObject = (document) => {
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
        name: "x-request-id",
        required: false,
        description: `${description} Kept when 1–128 of [A-Za-z0-9._:-], else replaced by a new UUID.`,
        schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" },
      },
    },
    headers: { RequestId: { description, schema: { type: "string" } } },
  };
  return doc as typeof document.openapiObject;
};

/** GET /openapi.json: this document. */
export const documentRoute = op({
  route: "GET /openapi.json",
  operationId: "getOpenApiDocument",
  summary: "This API's OpenAPI 3.1 document",
  response: responses({ 200: z.record(z.string(), z.unknown()).describe("the OpenAPI document") }, [400, 401, 403]),
  handler: async (_r, reply) => reply.server.swagger(),
});
