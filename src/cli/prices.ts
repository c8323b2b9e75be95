import { parseArgs } from "node:util";
import type { z } from "zod";
import { parseDatabaseUrl } from "../config.js";
import { utcDay } from "../domain/calendar.js";
import { createDb, type Db } from "../db/client.js";
import { logger } from "../logger.js";
import { hardwarePriceInput, modelHardwareInput, modelPriceInput } from "../pricing/schemas.js";
import { readPriceBook, recordHardwarePrice, recordModelHardware, recordModelPrice } from "../repositories/prices.js";

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
const today = utcDay(new Date());
const common = { effectiveFrom: values.from ?? today, source: values.source };

function input<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  logger.error("invalid price", { issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) });
  process.exit(2);
}

const commands: Record<string, (db: Db) => Promise<unknown>> = {
  list: (db) => readPriceBook(db, { asOf: values["as-of"] ?? today }),
  history: (db) => readPriceBook(db, { history: true }),
  "set-hardware": (db) => recordHardwarePrice(db, input(hardwarePriceInput, { sku: args[0], usdPerSecond: args[1], ...common })),
  "set-model": (db) => recordModelPrice(db, input(modelPriceInput, { model: args[0], unit: args[1], usdPerUnit: args[2], ...common })),
  "map-model": (db) =>
    recordModelHardware(db, input(modelHardwareInput, { model: args[0], sku: args[1] === "none" ? null : args[1], ...common })),
};

const run = command ? commands[command] : undefined;
if (!run) {
  logger.error("usage: npm run prices -- list|history|set-hardware|set-model|map-model …", { commands: Object.keys(commands) });
  process.exitCode = 2;
} else {
  const db = createDb(parseDatabaseUrl(process.env), 2);
  try {
    process.stdout.write(`${JSON.stringify(await run(db), null, 2)}\n`);
  } finally {
    await db.$disconnect();
  }
}
