import { stringify } from "csv-stringify/sync";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { csvColumns } from "../../domain/usage-measures.js";
import {
  hardwarePrice,
  hardwarePriceInput,
  modelHardware,
  modelHardwareInput,
  modelPrice,
  modelPriceInput,
  priceBook,
} from "../../pricing/schemas.js";
import { op } from "../operations.js";
import { WRITE_ERRORS, responses, usageReport } from "../schemas.js";

// CSV injection (OWASP): provider text (model, deployment names) starting with one of these would be a formula, so it gets a leading quote.
const FORMULA_START = /^[=+\-@\t\r]/;

/** RFC 4180 under a header row of `columns`, also when there are no rows; lines end in \n as they always have here. */
function toCsv(rows: object[], columns: string[]): string {
  return stringify(rows, {
    header: true,
    columns,
    // csv-stringify quotes \n but not a bare \r, which spreadsheets also read as a line break.
    quoted_match: /\r/,
    // Booleans as JSON spells them (csv-stringify's default writes false as an empty cell).
    cast: { string: (value) => (FORMULA_START.test(value) ? `'${value}` : value), boolean: (value) => String(value) },
  });
}

// groupBy comes comma-separated (OpenAPI style form, explode false) and fillZeros as "true"/"false": both are typed before validation.
const usageQuery = producer.usageInput
  .safeExtend({ format: z.enum(["json", "csv"]).default("json") })
  .meta({ style: "form", explode: false });

const MAX_COVERAGE_HEADER = 8 * 1024;
const COVERAGE_OMITTED = `coverage is over ${MAX_COVERAGE_HEADER} bytes; read it from format=json`;

async function readQueryForm({ query }: { query: unknown }): Promise<void> {
  const q = query as Record<string, unknown>;
  if (typeof q.groupBy === "string") {
    q.groupBy = q.groupBy
      .split(",")
      .map((g) => g.trim())
      .filter(Boolean);
  }
  if (q.fillZeros === "true" || q.fillZeros === "false") q.fillZeros = q.fillZeros === "true";
}

/** Usage as JSON or CSV; a CSV's coverage is in the X-Coverage header, without each item's `days`. */
export const usageRoutes = (ctx: AppContext) => [
  op({
    route: "GET /v1/usage",
    operationId: "queryUsage",
    summary: "Usage rows with estimated cost, idle-floor lines and coverage, as JSON or CSV",
    preValidation: readQueryForm,
    querystring: usageQuery,
    response: responses(
      {
        200: {
          description: `usage for the range; CSV as an attachment with the coverage in the X-Coverage header (each item without \`days\`; X-Coverage-Omitted instead when it is over ${MAX_COVERAGE_HEADER} bytes)`,
          content: {
            "application/json": { schema: usageReport },
            "text/csv": {
              schema: z
                .string()
                .describe(
                  `a header row, also without rows, then a line per row: line (usage or idle_floor), the groupBy columns, ${csvColumns([]).slice(1).join(", ")}`,
                ),
            },
          },
        },
      },
      [400, 401, 504],
      {
        400: `bad input, from..to longer than ${producer.MAX_USAGE_DAYS} days, or an answer over ${producer.MAX_USAGE_LINES} lines (\`validation_failed\`, naming the field)`,
      },
    ),
    handler: async (r, reply) => {
      const { format, ...query } = r.query;
      // A client that hangs up stops its query: the database does not work on for no one.
      const gone = new AbortController();
      reply.raw.on("close", () => reply.raw.writableFinished || gone.abort());
      const report = await producer.queryUsage(ctx, query, { signal: gone.signal });
      if (format === "json") return report;
      // Built whole before anything is sent: an error is the error shape, never a cut-off sheet. One
      // sheet: usage lines, then idle-floor lines, told apart by the `line` column.
      const lines = [...report.rows.map((row) => ({ line: "usage", ...row })), ...report.idleFloor];
      // Each day's finality is in the rows (a zero row per read day with fillZeros); the per-day list would outgrow a header.
      const coverage = JSON.stringify(report.coverage.map(({ days: _days, ...span }) => span));
      // Clients and proxies refuse headers over 8-16 KiB: hundreds of connections' coverage is left to the JSON form.
      const covered = coverage.length <= MAX_COVERAGE_HEADER ? { "x-coverage": coverage } : { "x-coverage-omitted": COVERAGE_OMITTED };
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="usage-${query.from}-${query.to}.csv"`)
        .headers(covered)
        .send(toCsv(lines, csvColumns(query.groupBy)));
    },
  }),
];

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
