import { isoInstant } from "../../domain/calendar.js";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { EventKind } from "../../generated/prisma/enums.js";
import * as producer from "../../producer.js";
import { HEALTH_STATES } from "../../health.js";
import { decodeConnectionCursor, getConnectionView, listConnectionViews } from "../../repositories/connection-views.js";
import { connectionNotFound, requireConnection } from "../../repositories/connections.js";
import { decodeCursor, listEvents } from "../../repositories/events.js";

const idParams = z.object({ id: producer.connectionId });
const eventsQuery = z.object({
  kind: z.enum(Object.values(EventKind) as [string, ...string[]]).optional(),
  since: isoInstant.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .refine((c) => decodeCursor(c) !== null, "cursor was not issued by this API")
    .optional(),
});

const listQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z
      .string()
      .refine((c) => decodeConnectionCursor(c) !== null, "cursor was not issued by this API")
      .optional(),
    state: z.enum(HEALTH_STATES).optional(),
    workspaceId: producer.workspaceId.optional(),
    q: z.string().trim().min(1).max(200).optional(),
  })
  .strict();

/** Connection lifecycle and the health view support staff read. Responses never include the token. */
export function connectionRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      "/v1/connections",
      { schema: { body: producer.connectInput, headers: z.object({ "idempotency-key": producer.idempotencyKey.optional() }) } },
      async (request, reply) => {
        const idempotencyKey = request.headers["idempotency-key"];
        return reply.code(202).send(await producer.connect(ctx, request.body, { idempotencyKey }));
      },
    );

    app.get("/v1/connections", { schema: { querystring: listQuery } }, async (request) => {
      const { limit, cursor, state, workspaceId, q } = request.query;
      return listConnectionViews(ctx.db, { limit, cursor, state, workspaceId, q });
    });

    app.get("/v1/connections/:id", { schema: { params: idParams } }, async (request) => {
      const view = await getConnectionView(ctx.db, request.params.id);
      if (!view) throw connectionNotFound(request.params.id);
      // Only Postgres is needed to answer: without Redis the next sync time is unknown (null).
      const nextSyncAt = view.status === "connected" ? await ctx.queues.nextSyncAt(view.id).catch(() => null) : null;
      return { ...view, nextSyncAt: nextSyncAt?.toISOString() ?? null };
    });

    app.put("/v1/connections/:id/token", { schema: { params: idParams, body: producer.tokenInput } }, async (request, reply) => {
      return reply.code(202).send(await producer.replaceToken(ctx, request.params.id, request.body.token));
    });

    app.post("/v1/connections/:id/sync", { schema: { params: idParams } }, async (request, reply) => {
      await producer.syncNow(ctx, request.params.id);
      return reply.code(202).send({ status: "queued" });
    });

    app.delete("/v1/connections/:id", { schema: { params: idParams } }, async (request, reply) => {
      await producer.disconnect(ctx, request.params.id);
      return reply.code(204).send();
    });

    app.get("/v1/connections/:id/events", { schema: { params: idParams, querystring: eventsQuery } }, async (request) => {
      await requireConnection(ctx.db, request.params.id);
      const q = request.query;
      return listEvents(ctx.db, request.params.id, {
        kind: q.kind as EventKind | undefined,
        since: q.since ? new Date(q.since) : undefined,
        limit: q.limit,
        cursor: q.cursor,
      });
    });
  };
}
