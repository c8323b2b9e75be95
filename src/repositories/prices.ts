import type { Db } from "../db/client.js";
import type { z } from "zod";
import type { PriceBook, hardwarePriceInput, modelHardwareInput, modelPriceInput } from "../pricing/schemas.js";

// The price book is append-only: for a key and a day, the row with the latest effective_from, then the latest id, applies.

/** Each row of `table` as the days it is in force, [since, until), so pricing many rows is one hash join. */
export const spans = (table: string, key: string, columns: string, order = "id") =>
  `SELECT ${key}, ${columns}, effective_from AS since,
     lead(effective_from) OVER (PARTITION BY ${key} ORDER BY effective_from, ${order}) AS until FROM ${table}`;
export const inSpan = (s: string, day: string) => `${day} >= ${s}.since AND (${s}.until IS NULL OR ${day} < ${s}.until)`;

export const HARDWARE_PRICE_SPANS = spans("hardware_prices", "sku", "usd_per_second AS price");
export const MODEL_PRICE_SPANS = spans("model_prices", "model, unit", "usd_per_unit AS price");
export const MODEL_SKU_SPANS = spans("model_hardware", "model", "sku");

const COMMON = `id::text AS id, to_char(effective_from, 'YYYY-MM-DD') AS "effectiveFrom", source, recorded_at AS "recordedAt"`;
const TABLES = {
  hardware: {
    table: "hardware_prices",
    key: "sku",
    columns: `sku, trim_scale(usd_per_second)::text AS "usdPerSecond"`,
    insert: `(sku, usd_per_second, effective_from, source) VALUES ($1, $2::numeric, $3::date, $4)`,
  },
  models: {
    table: "model_prices",
    key: "model, unit",
    columns: `model, unit::text AS unit, trim_scale(usd_per_unit)::text AS "usdPerUnit"`,
    insert: `(model, unit, usd_per_unit, effective_from, source) VALUES ($1, $2::"ModelPriceUnit", $3::numeric, $4::date, $5)`,
  },
  modelHardware: {
    table: "model_hardware",
    key: "model",
    columns: `model, sku`,
    // Only when the SKU is unset or has a price on the mapping's first day.
    insert: `(model, sku, effective_from, source) SELECT $1, $2, $3::date, $4
      WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM hardware_prices h WHERE h.sku = $2 AND h.effective_from <= $3::date)`,
  },
} as const;
type Book = keyof typeof TABLES;

/** The prices in force on `asOf` (one row per key), or with `history` every recorded row, newest first. */
export async function readPriceBook(db: Db, options: { asOf: string } | { history: true }): Promise<PriceBook> {
  const read = async <B extends Book>(book: B) => {
    const t = TABLES[book];
    const sql =
      "asOf" in options
        ? `SELECT DISTINCT ON (${t.key}) ${t.columns}, ${COMMON} FROM ${t.table} WHERE effective_from <= $1::date
           ORDER BY ${t.key}, effective_from DESC, id DESC`
        : `SELECT ${t.columns}, ${COMMON} FROM ${t.table} ORDER BY id DESC`;
    return db.$queryRawUnsafe<PriceBook[B]>(sql, ...("asOf" in options ? [options.asOf] : []));
  };
  const [hardware, models, modelHardware] = await Promise.all([read("hardware"), read("models"), read("modelHardware")]);
  // Unset mappings are history, not prices in force.
  return { hardware, models, modelHardware: "asOf" in options ? modelHardware.filter((m) => m.sku !== null) : modelHardware };
}

/** The row recorded; null when a model's mapping names a SKU without a price on its first day. */
async function insert<B extends Book>(db: Db, book: B, params: unknown[]): Promise<PriceBook[B][number] | null> {
  const t = TABLES[book];
  const [row] = await db.$queryRawUnsafe<PriceBook[B]>(`INSERT INTO ${t.table} ${t.insert} RETURNING ${t.columns}, ${COMMON}`, ...params);
  return row ?? null;
}

export const recordHardwarePrice = async (db: Db, p: z.output<typeof hardwarePriceInput>) =>
  (await insert(db, "hardware", [p.sku, p.usdPerSecond, p.effectiveFrom, p.source]))!;
export const recordModelPrice = async (db: Db, p: z.output<typeof modelPriceInput>) =>
  (await insert(db, "models", [p.model, p.unit, p.usdPerUnit, p.effectiveFrom, p.source]))!;
export const recordModelHardware = (db: Db, p: z.output<typeof modelHardwareInput>) =>
  insert(db, "modelHardware", [p.model, p.sku, p.effectiveFrom, p.source]);
