import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import {
  hardwarePrice,
  hardwarePriceInput,
  modelHardware,
  modelHardwareInput,
  modelPrice,
  modelPriceInput,
  priceBook,
} from "../../pricing/schemas.js";
import * as producer from "../../producer.js";
import { WRITE_ERRORS, noQuery, responses } from "../schemas.js";

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
          querystring: producer.priceBookInput,
          response: responses({ 200: priceBook.extend({ asOf: z.iso.date() }).describe("prices in force") }, [400, 401]),
        },
      },
      async (request) => producer.getPriceBook(ctx, request.query),
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
      async () => producer.listPriceHistory(ctx),
    );
    // Each write records one row and answers it, 201.
    const write = <B extends z.ZodType, C extends z.ZodType>(
      url: string,
      operationId: string,
      summary: string,
      body: B,
      created: C,
      // The answer is checked against `created` when it is serialized.
      record: (c: AppContext, input: z.output<B>) => Promise<object>,
    ) =>
      app.post(
        url,
        {
          schema: {
            operationId,
            summary,
            tags,
            querystring: noQuery,
            body,
            response: responses({ 201: created.describe("recorded") }, WRITE_ERRORS),
          },
        },
        async (request, reply) => {
          reply.code(201);
          return record(ctx, request.body as z.output<B>);
        },
      );
    write(
      "/v1/prices/hardware",
      "recordHardwarePrice",
      "Record a hardware price from a day",
      hardwarePriceInput,
      hardwarePrice,
      producer.recordHardwarePrice,
    );
    write(
      "/v1/prices/models",
      "recordModelPrice",
      "Record a per-token or per-output model price from a day",
      modelPriceInput,
      modelPrice,
      producer.recordModelPrice,
    );
    write(
      "/v1/prices/model-hardware",
      "recordModelHardware",
      "Record the hardware a public model runs on (sku null unsets it; a sku the price book has no price for that day is a 400)",
      modelHardwareInput,
      modelHardware,
      producer.recordModelHardware,
    );
  };
}
