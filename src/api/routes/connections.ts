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
  erasureView,
  eventPage,
  publicConnection,
  responses,
  syncQueued,
  workspaceErasure,
  workspaceSettings,
} from "../schemas.js";

const params = z.object({ id: producer.connectionId });
const workspaceParams = z.object({ workspaceId: producer.workspaceId });
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
    summary: "Sync now (a sync already pending serves it; one running is followed by another as it ends)",
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

// Without a body (fastify reads it as null), an erasure refuses a connection that is not disconnected.
const body = producer.erasureInput.nullish().meta({ examples: [{ disconnect: true }] });
const description =
  "Irreversible. Deletes the ledger, daily usage rows, deployment releases and run state in a job, in batches; " +
  "the connection stays (disconnected, with `erasedAt`) with its event log and webhook deliveries, the audit trail. " +
  "Usage and coverage leave it out from the request on. One `history_erased` event (counts only) and a `connection.erased` webhook mark the end. " +
  "The body may be left out (`disconnect` is then false).";

/** Erasure on request: the API token only (a write), never the support token. */
export const erasureRoutes = (ctx: AppContext) => [
  op({
    route: "POST /v1/connections/:id/erasure",
    operationId: "eraseConnection",
    summary: "Erase a disconnected connection's usage history (asynchronous; asking again returns the same erasure)",
    description,
    params,
    body,
    response: responses({ 202: erasureView.describe("the erasure, in_progress or already erased") }, [...WRITE_ERRORS, 404, 409], {
      409: "the connection is not disconnected and the request did not ask to disconnect it (`conflict`)",
    }),
    handler: (r) => producer.eraseConnection(ctx, r.params.id, r.body ?? {}),
  }),
  op({
    route: "GET /v1/connections/:id/erasure",
    operationId: "getErasure",
    summary: "Where the connection's erasure stands: not_requested, in_progress (counts so far) or erased",
    params,
    response: responses({ 200: erasureView.describe("the erasure") }, [400, 401, 404]),
    handler: (r) => producer.getErasure(ctx, r.params.id),
  }),
  op({
    route: "POST /v1/workspaces/:workspaceId/erasure",
    operationId: "eraseWorkspace",
    summary: "Erase the usage history of every disconnected connection of a workspace (with disconnect: true, of every connection)",
    description,
    params: workspaceParams,
    body,
    response: responses({ 202: workspaceErasure.describe("the erasures, and the connections left as they are") }, [...WRITE_ERRORS, 404], {
      404: "the workspace has no connections (`not_found`)",
    }),
    handler: (r) => producer.eraseWorkspace(ctx, r.params.workspaceId, r.body ?? {}),
  }),
];

/** A workspace's settings: its default time zone for usage. A workspace exists as soon as it is named. */
export const workspaceRoutes = (ctx: AppContext) => [
  op({
    route: "GET /v1/workspaces/:workspaceId/settings",
    operationId: "getWorkspaceSettings",
    summary: "The workspace's settings (the defaults when it never set any)",
    params: workspaceParams,
    response: responses({ 200: workspaceSettings.describe("the settings") }, [400, 401]),
    handler: (r) => producer.getWorkspaceSettings(ctx, r.params.workspaceId),
  }),
  op({
    route: "PUT /v1/workspaces/:workspaceId/settings",
    operationId: "updateWorkspaceSettings",
    summary: "Set the workspace's settings: the time zone its usage is read in when a query names none",
    params: workspaceParams,
    body: producer.workspaceSettingsInput.meta({ examples: [{ timeZone: "America/Los_Angeles" }] }),
    response: responses({ 200: workspaceSettings.describe("the settings as stored") }, WRITE_ERRORS, {
      400: "bad input, e.g. an unknown time zone (`validation_failed`, naming `timeZone`)",
    }),
    handler: (r) => producer.updateWorkspaceSettings(ctx, r.params.workspaceId, r.body),
  }),
];
