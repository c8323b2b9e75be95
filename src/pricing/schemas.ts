import { isoDay } from "../domain/calendar.js";
import { printableText } from "../domain/text.js";
import { z } from "zod";

// Money is a decimal string end to end (JSON, CLI, Postgres numeric): a float would round prices such as 0.000725 and drift in sums.
const usd = (scale: number) =>
  z.string().regex(new RegExp(`^\\d{1,9}(\\.\\d{1,${scale}})?$`), `a non-negative decimal string with at most ${scale} decimals`);

const effectiveFrom = isoDay;
const source = printableText(500);
const sku = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, "a hardware SKU such as gpu-l40s or gpu-h100-2x");
const model = z
  .string()
  .regex(/^[\w.-]+\/[\w.-]+$/, "a model as owner/name")
  .max(200);

const MODEL_PRICE_UNITS = ["input_token", "output_token", "prediction"] as const;

export const hardwarePriceInput = z.strictObject({ sku, usdPerSecond: usd(12), effectiveFrom, source });
export const modelPriceInput = z.strictObject({ model, unit: z.enum(MODEL_PRICE_UNITS), usdPerUnit: usd(15), effectiveFrom, source });
/** `sku: null` unsets the mapping from that day. */
export const modelHardwareInput = z.strictObject({ model, sku: sku.nullable(), effectiveFrom, source });

// The rows as recorded and answered. Prices gain columns as the price book grows: known fields are
// described, and any others pass through (loose objects), so a new column is never dropped from an answer.
export const decimalUsd = z.string().describe("USD as a decimal string");
const recorded = { id: z.string(), effectiveFrom: z.iso.date(), source: z.string(), recordedAt: z.date() };
export const hardwarePrice = z.looseObject({ ...recorded, sku: z.string(), usdPerSecond: decimalUsd });
export const modelPrice = z.looseObject({ ...recorded, model: z.string(), unit: z.string(), usdPerUnit: decimalUsd });
export const modelHardware = z.looseObject({ ...recorded, model: z.string(), sku: z.string().nullable() });
export const priceBook = z.looseObject({
  hardware: z.array(hardwarePrice),
  models: z.array(modelPrice),
  modelHardware: z.array(modelHardware),
});
export type PriceBook = z.output<typeof priceBook>;
