import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { hardwarePriceInput, modelHardwareInput, modelPriceInput } from "../../pricing/schemas.js";
import { readPriceBook, recordHardwarePrice, recordModelHardware, recordModelPrice } from "../../repositories/prices.js";
import { WRITE_ERRORS, hardwarePrice, modelHardware, modelPrice, noQuery, priceBook, responses } from "../schemas.js";

const today = () => new Date().toISOString().slice(0, 10);
const tags = ["prices"];

/**
 * The price book behind the cost estimates. Every change is a new row (the history stays), so a
 * correction is recorded with the same effectiveFrom and wins as the later row.
 */
export function priceRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/v1/prices",
      {
        schema: {
          operationId: "getPriceBook",
          summary: "The price book in force on a day (default today)",
          tags,
          querystring: z.object({ asOf: z.iso.date().optional() }).strict(),
          response: responses({ 200: priceBook.extend({ asOf: z.iso.date() }).describe("prices in force") }, [400, 401]),
        },
      },
      async (request) => {
        const asOf = request.query.asOf ?? today();
        return { asOf, ...(await readPriceBook(ctx.db, { asOf })) };
      },
    );
    app.get(
      "/v1/prices/history",
      {
        schema: {
          operationId: "listPriceHistory",
          summary: "Every recorded price change, newest first",
          tags,
          querystring: noQuery,
          response: responses({ 200: priceBook.describe("every recorded row") }, [400, 401]),
        },
      },
      async () => readPriceBook(ctx.db, { history: true }),
    );
    const write = <B extends z.ZodType, C extends z.ZodType>(operationId: string, summary: string, body: B, created: C) => ({
      schema: {
        operationId,
        summary,
        tags,
        querystring: noQuery,
        body,
        response: responses({ 201: created.describe("recorded") }, WRITE_ERRORS),
      },
    });
    app.post(
      "/v1/prices/hardware",
      write("recordHardwarePrice", "Record a hardware price from a day", hardwarePriceInput, hardwarePrice),
      async (request, reply) => {
        reply.code(201);
        return recordHardwarePrice(ctx.db, request.body);
      },
    );
    app.post(
      "/v1/prices/models",
      write("recordModelPrice", "Record a per-token or per-output model price from a day", modelPriceInput, modelPrice),
      async (request, reply) => {
        reply.code(201);
        return recordModelPrice(ctx.db, request.body);
      },
    );
    app.post(
      "/v1/prices/model-hardware",
      write("recordModelHardware", "Record the hardware a public model runs on (sku null unsets it)", modelHardwareInput, modelHardware),
      async (request, reply) => {
        reply.code(201);
        return recordModelHardware(ctx.db, request.body);
      },
    );
  };
}
