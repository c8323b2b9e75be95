import { parseArgs } from "node:util";
import { parseDatabaseUrl } from "../config.js";
import { utcDay } from "../domain/calendar.js";
import { createDb, type Db } from "../db/client.js";
import { ValidationError } from "../errors.js";
import { logger } from "../logger.js";
import * as producer from "../producer.js";

// `npm run prices -- <command>`: read and change the price book (the same rules as the HTTP API).
//   list [--as-of YYYY-MM-DD]                    prices in force on a day (default today)
//   history                                      every recorded change, newest first
//   set-hardware SKU USD_PER_SECOND --from DATE --source TEXT
//   set-model MODEL UNIT USD_PER_UNIT --from DATE --source TEXT    (UNIT: input_token|output_token|prediction)
//   map-model MODEL SKU|none --from DATE --source TEXT             (hardware a public model runs on)
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { from: { type: "string" }, source: { type: "string" }, "as-of": { type: "string" } },
});
const [command, ...args] = positionals;
// Unchecked here: the producer validates it as it does an HTTP body, and refuses what the API refuses.
const input = (fields: Record<string, string | null | undefined>) =>
  ({ ...fields, effectiveFrom: values.from ?? utcDay(new Date()), source: values.source }) as never;

const commands: Record<string, (ctx: { db: Db }) => Promise<unknown>> = {
  list: (ctx) => producer.getPriceBook(ctx, { asOf: values["as-of"] }),
  history: (ctx) => producer.listPriceHistory(ctx),
  "set-hardware": (ctx) => producer.recordHardwarePrice(ctx, input({ sku: args[0], usdPerSecond: args[1] })),
  "set-model": (ctx) => producer.recordModelPrice(ctx, input({ model: args[0], unit: args[1], usdPerUnit: args[2] })),
  "map-model": (ctx) => producer.recordModelHardware(ctx, input({ model: args[0], sku: args[1] === "none" ? null : args[1] })),
};

const run = command ? commands[command] : undefined;
if (!run) {
  logger.error("usage: npm run prices -- list|history|set-hardware|set-model|map-model …", { commands: Object.keys(commands) });
  process.exitCode = 2;
} else {
  const db = createDb(parseDatabaseUrl(process.env), 2);
  try {
    process.stdout.write(`${JSON.stringify(await run({ db }), null, 2)}\n`);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    logger.error("invalid price", { issues: err.issues });
    process.exitCode = 2;
  } finally {
    await db.$disconnect();
  }
}
