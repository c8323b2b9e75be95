import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { op } from "../operations.js";
import { WRITE_ERRORS, erasureView, responses, workspaceErasure } from "../schemas.js";

// Without a body (fastify reads it as null), an erasure refuses a connection that is not disconnected.
const body = producer.erasureInput.nullish().meta({ examples: [{ disconnect: true }] });
const description =
  "Irreversible. Deletes the ledger, daily usage rows, deployment releases and run state in a job, in batches; " +
  "the connection stays (disconnected, with `erasedAt`) with its event log and webhook deliveries, the audit trail. " +
  "Usage and coverage leave it out from the request on. One `history_erased` event (counts only) and a `connection.erased` webhook mark the end. " +
  "The body may be left out (`disconnect` is then false).";
const params = z.object({ id: producer.connectionId });

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
    params: z.object({ workspaceId: producer.workspaceId }),
    body,
    response: responses({ 202: workspaceErasure.describe("the erasures, and the connections left as they are") }, [...WRITE_ERRORS, 404], {
      404: "the workspace has no connections (`not_found`)",
    }),
    handler: (r) => producer.eraseWorkspace(ctx, r.params.workspaceId, r.body ?? {}),
  }),
];
