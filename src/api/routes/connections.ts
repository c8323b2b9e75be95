import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { op } from "../operations.js";
import {
  WRITE_ERRORS,
  acceptedConnection,
  connectionDetail,
  connectionPage,
  deploymentList,
  eventPage,
  publicConnection,
  responses,
  syncQueued,
} from "../schemas.js";

const params = z.object({ id: producer.connectionId });
const pending = "the connection, pending until verified";
const example = { workspaceId: "ws-1", token: "r8_0000000000000000000000000000000000000" };

/** Connection lifecycle, the health view support staff read and the deployments. Responses never include the token. */
export const connectionRoutes = (ctx: AppContext) => [
  op({
    route: "POST /v1/connections",
    operationId: "createConnection",
    summary: "Connect a Replicate account: store its token and queue its verification",
    headers: z.object({ "idempotency-key": producer.idempotencyKey.optional() }),
    body: producer.connectInput.meta({ examples: [example] }),
    response: responses(
      { 202: acceptedConnection.describe(`${pending}; a retry with the same Idempotency-Key returns the same connection`) },
      [...WRITE_ERRORS, 409, 503],
    ),
    handler: (r) => producer.connect(ctx, r.body, { idempotencyKey: r.headers["idempotency-key"] }),
  }),
  op({
    route: "GET /v1/connections",
    operationId: "listConnections",
    summary: "Connections with their health, newest first, a page at a time",
    querystring: producer.listConnectionsInput,
    response: responses({ 200: connectionPage.describe("a page of connections") }, [400, 401]),
    handler: (r) => producer.listConnections(ctx, r.query),
  }),
  op({
    route: "GET /v1/connections/:id",
    operationId: "getConnection",
    summary: "One connection with its health and next scheduled sync",
    params,
    response: responses({ 200: connectionDetail.describe("the connection") }, [400, 401, 404]),
    handler: (r) => producer.getConnection(ctx, r.params.id),
  }),
  op({
    route: "PUT /v1/connections/:id/token",
    operationId: "replaceToken",
    summary: "Replace the connection's token and verify it again (syncing resumes where it stopped)",
    description:
      "The token must belong to the Replicate account the connection has synced: a token of another account is not used, " +
      "and verification pauses the connection with an `account_changed` event (create a new connection for that account).",
    params,
    body: producer.tokenInput.meta({ examples: [{ token: example.token }] }),
    response: responses({ 202: publicConnection.describe(pending) }, [...WRITE_ERRORS, 404, 409, 503], {
      409: "the connection is disconnected; create a new one (`conflict`)",
    }),
    handler: (r) => producer.replaceToken(ctx, r.params.id, r.body.token),
  }),
  op({
    route: "POST /v1/connections/:id/sync",
    operationId: "syncConnection",
    summary: "Sync now (does nothing when a sync is already pending or running)",
    params,
    response: responses({ 202: syncQueued.describe("a sync is queued or already under way") }, [...WRITE_ERRORS, 404, 409, 503], {
      409: "only connected connections sync (`conflict`)",
    }),
    handler: (r) => producer.syncNow(ctx, r.params.id).then(() => ({ status: "queued" })),
  }),
  op({
    route: "DELETE /v1/connections/:id",
    operationId: "disconnectConnection",
    summary: "Delete the stored token and stop syncing (usage already synced is kept); idempotent",
    params,
    response: responses({ 204: z.null().describe("disconnected") }, [...WRITE_ERRORS, 404]),
    handler: (r) => producer.disconnect(ctx, r.params.id).then(() => null),
  }),
  op({
    route: "GET /v1/connections/:id/events",
    operationId: "listConnectionEvents",
    summary: "The connection's integration event log, newest first, a page at a time",
    params,
    querystring: producer.listEventsInput,
    response: responses({ 200: eventPage.describe("a page of events") }, [400, 401, 404]),
    handler: (r) => producer.listEvents(ctx, r.params.id, r.query),
  }),
  op({
    route: "GET /v1/connections/:id/deployments",
    operationId: "listConnectionDeployments",
    summary: "The connection's deployments: hardware SKU, min/max instances, current release",
    params,
    response: responses({ 200: deploymentList.describe("the deployments as last read") }, [400, 401, 404]),
    handler: (r) => producer.listDeployments(ctx, r.params.id),
  }),
];
