import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import {
  WRITE_ERRORS,
  acceptedConnection,
  connectionDetail,
  connectionPage,
  deploymentList,
  eventPage,
  noQuery,
  publicConnection,
  responses,
  syncQueued,
} from "../schemas.js";

const idParams = z.object({ id: producer.connectionId });
const tags = ["connections"];
const example = { workspaceId: "ws-1", token: "r8_0000000000000000000000000000000000000" };

/** Connection lifecycle, the health view support staff read and the deployments, through the producer. Responses never include the token. */
export function connectionRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      "/v1/connections",
      {
        schema: {
          operationId: "createConnection",
          summary: "Connect a Replicate account: store its token and queue its verification",
          tags,
          querystring: noQuery,
          headers: z.object({ "idempotency-key": producer.idempotencyKey.optional() }),
          body: producer.connectInput.meta({ examples: [example] }),
          response: responses(
            {
              202: acceptedConnection.describe(
                "the connection, pending until verified; a retry with the same Idempotency-Key returns the same connection",
              ),
            },
            // 409: the Idempotency-Key was used for another token; 503: the job queue (Redis) is down, nothing created.
            [...WRITE_ERRORS, 409, 503],
          ),
        },
      },
      async (request, reply) =>
        reply.code(202).send(await producer.connect(ctx, request.body, { idempotencyKey: request.headers["idempotency-key"] })),
    );

    app.get(
      "/v1/connections",
      {
        schema: {
          operationId: "listConnections",
          summary: "Connections with their health, newest first, a page at a time",
          tags,
          querystring: producer.listConnectionsInput,
          response: responses({ 200: connectionPage.describe("a page of connections") }, [400, 401]),
        },
      },
      async (request) => producer.listConnections(ctx, request.query),
    );

    app.get(
      "/v1/connections/:id",
      {
        schema: {
          operationId: "getConnection",
          summary: "One connection with its health and next scheduled sync",
          tags,
          params: idParams,
          querystring: noQuery,
          response: responses({ 200: connectionDetail.describe("the connection") }, [400, 401, 404]),
        },
      },
      async (request) => producer.getConnection(ctx, request.params.id),
    );

    app.put(
      "/v1/connections/:id/token",
      {
        schema: {
          operationId: "replaceToken",
          summary: "Replace the connection's token and verify it again (syncing resumes where it stopped)",
          description:
            "The token must belong to the Replicate account the connection has synced: a token of another account is not used, " +
            "and verification pauses the connection with an `account_changed` event (create a new connection for that account).",
          tags,
          params: idParams,
          querystring: noQuery,
          body: producer.tokenInput.meta({ examples: [{ token: example.token }] }),
          response: responses(
            { 202: publicConnection.describe("the connection, pending until verified") },
            [...WRITE_ERRORS, 404, 409, 503],
            {
              409: "the connection is disconnected; create a new one (`conflict`)",
            },
          ),
        },
      },
      async (request, reply) => reply.code(202).send(await producer.replaceToken(ctx, request.params.id, request.body.token)),
    );

    app.post(
      "/v1/connections/:id/sync",
      {
        schema: {
          operationId: "syncConnection",
          summary: "Sync now (does nothing when a sync is already pending or running)",
          tags,
          params: idParams,
          querystring: noQuery,
          response: responses({ 202: syncQueued.describe("a sync is queued or already under way") }, [...WRITE_ERRORS, 404, 409, 503], {
            409: "only connected connections sync (`conflict`)",
          }),
        },
      },
      async (request, reply) => {
        await producer.syncNow(ctx, request.params.id);
        return reply.code(202).send({ status: "queued" as const });
      },
    );

    app.delete(
      "/v1/connections/:id",
      {
        schema: {
          operationId: "disconnectConnection",
          summary: "Delete the stored token and stop syncing (usage already synced is kept); idempotent",
          tags,
          params: idParams,
          querystring: noQuery,
          response: responses({ 204: z.null().describe("disconnected") }, [...WRITE_ERRORS, 404]),
        },
      },
      async (request, reply) => {
        await producer.disconnect(ctx, request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      "/v1/connections/:id/events",
      {
        schema: {
          operationId: "listConnectionEvents",
          summary: "The connection's integration event log, newest first, a page at a time",
          tags,
          params: idParams,
          querystring: producer.listEventsInput,
          response: responses({ 200: eventPage.describe("a page of events") }, [400, 401, 404]),
        },
      },
      async (request) => producer.listEvents(ctx, request.params.id, request.query),
    );

    app.get(
      "/v1/connections/:id/deployments",
      {
        schema: {
          operationId: "listConnectionDeployments",
          summary: "The connection's deployments: hardware SKU, min/max instances, current release",
          tags,
          params: idParams,
          querystring: noQuery,
          response: responses({ 200: deploymentList.describe("the deployments as last read") }, [400, 401, 404]),
        },
      },
      async (request) => producer.listDeployments(ctx, request.params.id),
    );
  };
}
