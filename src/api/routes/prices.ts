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
import { op } from "../operations.js";
import { WRITE_ERRORS, responses } from "../schemas.js";

/** Each write records one row (a correction is a later row with the same effectiveFrom) and answers it. */
const recorded = (created: z.ZodType) => responses({ 201: created.describe("recorded") }, WRITE_ERRORS);

/** The price book behind the cost estimates. */
export const priceRoutes = (ctx: AppContext) => [
  op({
    route: "GET /v1/prices",
    operationId: "getPriceBook",
    summary: "The price book in force on a day (default today)",
    querystring: producer.priceBookInput,
    response: responses({ 200: priceBook.extend({ asOf: z.iso.date() }).describe("prices in force") }, [400, 401]),
    handler: (r) => producer.getPriceBook(ctx, r.query),
  }),
  op({
    route: "GET /v1/prices/history",
    operationId: "listPriceHistory",
    summary: "Every recorded price change, newest first",
    response: responses({ 200: priceBook.describe("every recorded row") }, [400, 401]),
    handler: () => producer.listPriceHistory(ctx),
  }),
  op({
    route: "POST /v1/prices/hardware",
    operationId: "recordHardwarePrice",
    summary: "Record a hardware price from a day",
    body: hardwarePriceInput,
    response: recorded(hardwarePrice),
    handler: (r) => producer.recordHardwarePrice(ctx, r.body),
  }),
  op({
    route: "POST /v1/prices/models",
    operationId: "recordModelPrice",
    summary: "Record a per-token or per-output model price from a day",
    body: modelPriceInput,
    response: recorded(modelPrice),
    handler: (r) => producer.recordModelPrice(ctx, r.body),
  }),
  op({
    route: "POST /v1/prices/model-hardware",
    operationId: "recordModelHardware",
    summary: "Record the hardware a public model runs on (sku null unsets it; a sku the price book has no price for that day is a 400)",
    body: modelHardwareInput,
    response: recorded(modelHardware),
    handler: (r) => producer.recordModelHardware(ctx, r.body),
  }),
];
