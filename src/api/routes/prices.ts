import { isoDay } from "../../domain/calendar.js";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { hardwarePriceInput, modelHardwareInput, modelPriceInput } from "../../pricing/schemas.js";
import { readPriceBook, recordHardwarePrice, recordModelHardware, recordModelPrice } from "../../repositories/prices.js";

const today = () => new Date().toISOString().slice(0, 10);

/**
 * The price book behind the cost estimates. Every change is a new row (the history stays), so a
 * correction is recorded with the same effectiveFrom and wins as the later row.
 */
export function priceRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/v1/prices", { schema: { querystring: z.object({ asOf: isoDay.optional() }) } }, async (request) => {
      const asOf = request.query.asOf ?? today();
      return { asOf, ...(await readPriceBook(ctx.db, { asOf })) };
    });
    app.get("/v1/prices/history", async () => readPriceBook(ctx.db, { history: true }));
    app.post("/v1/prices/hardware", { schema: { body: hardwarePriceInput } }, async (request, reply) =>
      reply.code(201).send(await recordHardwarePrice(ctx.db, request.body)),
    );
    app.post("/v1/prices/models", { schema: { body: modelPriceInput } }, async (request, reply) =>
      reply.code(201).send(await recordModelPrice(ctx.db, request.body)),
    );
    app.post("/v1/prices/model-hardware", { schema: { body: modelHardwareInput } }, async (request, reply) =>
      reply.code(201).send(await recordModelHardware(ctx.db, request.body)),
    );
  };
}
