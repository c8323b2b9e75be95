import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { EventKind } from "../../generated/prisma/enums.js";
import * as producer from "../../producer.js";
import { listConnections, requireConnection, toPublic } from "../../repositories/connections.js";
import { decodeCursor, lastErrorEvent, listEvents } from "../../repositories/events.js";
import { parseCheckpoint } from "../../sync/checkpoint.js";

const idParams = z.object({ id: producer.connectionId });
const eventsQuery = z.object({
  kind: z.enum(Object.values(EventKind) as [string, ...string[]]).optional(),
  since: z.iso.datetime().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .refine((c) => decodeCursor(c) !== null, "cursor was not issued by this API")
    .optional(),
});

/** Connection lifecycle and the health view support staff read. Responses never include the token. */
export function connectionRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post("/v1/connections", { schema: { body: producer.connectInput } }, async (request, reply) => {
      return reply.code(202).send(await producer.connect(ctx, request.body));
    });

    // Without workspaceId: every connection (the support page), newest first.
    app.get("/v1/connections", { schema: { querystring: z.object({ workspaceId: producer.workspaceId.optional() }) } }, async (request) => {
      return { connections: (await listConnections(ctx.db, request.query.workspaceId)).map(toPublic) };
    });

    app.get("/v1/connections/:id", { schema: { params: idParams } }, async (request) => {
      const row = await requireConnection(ctx.db, request.params.id);
      const run = parseCheckpoint(row.syncState);
      const nextSyncAt = row.status === "connected" ? await ctx.queues.nextSyncAt(row.id) : null;
      return {
        ...toPublic(row),
        currentRun: run && { runId: run.runId, startedAt: run.startedAt, pagesDone: run.pagesDone, predictionsSeen: run.predictionsSeen },
        lastError: await lastErrorEvent(ctx.db, row.id),
        nextSyncAt: nextSyncAt?.toISOString() ?? null,
      };
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
