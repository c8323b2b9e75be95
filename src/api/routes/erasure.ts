import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { WRITE_ERRORS, erasureView, noQuery, responses, workspaceErasure } from "../schemas.js";

const tags = ["erasure"];
const idParams = z.object({ id: producer.connectionId });
// Without a body (fastify reads it as null), an erasure refuses a connection that is not disconnected.
const body = producer.erasureInput.nullish().meta({ examples: [{ disconnect: true }] });
const IRREVERSIBLE =
  "Irreversible. Deletes the ledger, daily usage rows, deployment releases and run state in a job, in batches; " +
  "the connection stays (disconnected, with `erasedAt`) with its event log and webhook deliveries, the audit trail. " +
  "Usage and coverage leave it out from the request on. One `history_erased` event (counts only) and a `connection.erased` webhook mark the end. " +
  "The body may be left out (`disconnect` is then false).";

/** Erasure on request, through the producer: the API token only (a write), never the support token. */
export function erasureRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      "/v1/connections/:id/erasure",
      {
        schema: {
          operationId: "eraseConnection",
          summary: "Erase a disconnected connection's usage history (asynchronous; asking again returns the same erasure)",
          description: IRREVERSIBLE,
          tags,
          params: idParams,
          querystring: noQuery,
          body,
          response: responses({ 202: erasureView.describe("the erasure, in_progress or already erased") }, [...WRITE_ERRORS, 404, 409], {
            409: "the connection is not disconnected and the request did not ask to disconnect it (`conflict`)",
          }),
        },
      },
      async (request, reply) => reply.code(202).send(await producer.eraseConnection(ctx, request.params.id, request.body ?? {})),
    );

    app.get(
      "/v1/connections/:id/erasure",
      {
        schema: {
          operationId: "getErasure",
          summary: "Where the connection's erasure stands: not_requested, in_progress (counts so far) or erased",
          tags,
          params: idParams,
          querystring: noQuery,
          response: responses({ 200: erasureView.describe("the erasure") }, [400, 401, 404]),
        },
      },
      async (request) => producer.getErasure(ctx, request.params.id),
    );

    app.post(
      "/v1/workspaces/:workspaceId/erasure",
      {
        schema: {
          operationId: "eraseWorkspace",
          summary: "Erase the usage history of every disconnected connection of a workspace (with disconnect: true, of every connection)",
          description: IRREVERSIBLE,
          tags,
          params: z.object({ workspaceId: producer.workspaceId }),
          querystring: noQuery,
          body,
          response: responses(
            { 202: workspaceErasure.describe("the erasures, and the connections left as they are") },
            [...WRITE_ERRORS, 404],
            {
              404: "the workspace has no connections (`not_found`)",
            },
          ),
        },
      },
      async (request, reply) => reply.code(202).send(await producer.eraseWorkspace(ctx, request.params.workspaceId, request.body ?? {})),
    );
  };
}
