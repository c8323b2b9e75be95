import type { Db } from "../db/client.js";
import type { HardwarePriceInput, ModelHardwareInput, ModelPriceInput, PriceBook } from "../pricing/schemas.js";

// The price book is append-only: a change is a new row, and for a key and a day the row with the
// latest effective_from, then the latest id, applies.

/**
 * Each row of `table` as the span of days it is in force, [since, until), until the next row of its
 * key (a later row of the same day leaves the earlier an empty span): pricing many rows is one hash join.
 */
export const spans = (table: string, key: string, columns: string, order = "id") =>
  `SELECT ${key}, ${columns}, effective_from AS since,
     lead(effective_from) OVER (PARTITION BY ${key} ORDER BY effective_from, ${order}) AS until FROM ${table}`;
/** `day` is in the span `s`. */
export const inSpan = (s: string, day: string) => `${day} >= ${s}.since AND (${s}.until IS NULL OR ${day} < ${s}.until)`;

export const HARDWARE_PRICE_SPANS = spans("hardware_prices", "sku", "usd_per_second AS price");
export const MODEL_PRICE_SPANS = spans("model_prices", "model, unit", "usd_per_unit AS price");
export const MODEL_SKU_SPANS = spans("model_hardware", "model", "sku");

type HardwarePriceRow = PriceBook["hardware"][number];
type ModelPriceRow = PriceBook["models"][number];
type ModelHardwareRow = PriceBook["modelHardware"][number];

const COMMON = `id::text AS id, to_char(effective_from, 'YYYY-MM-DD') AS "effectiveFrom", source, recorded_at AS "recordedAt"`;
const TABLES = {
  hardware: { table: "hardware_prices", key: "sku", columns: `sku, trim_scale(usd_per_second)::text AS "usdPerSecond"` },
  models: {
    table: "model_prices",
    key: "model, unit",
    columns: `model, unit::text AS unit, trim_scale(usd_per_unit)::text AS "usdPerUnit"`,
  },
  modelHardware: { table: "model_hardware", key: "model", columns: `model, sku` },
} as const;

/** The prices in force on `asOf` (one row per key), or with `history` every recorded row, newest first. */
export async function readPriceBook(db: Db, options: { asOf: string } | { history: true }): Promise<PriceBook> {
  const read = async <T>(t: (typeof TABLES)[keyof typeof TABLES]) => {
    const sql =
      "asOf" in options
        ? `SELECT DISTINCT ON (${t.key}) ${t.columns}, ${COMMON} FROM ${t.table} WHERE effective_from <= $1::date
           ORDER BY ${t.key}, effective_from DESC, id DESC`
        : `SELECT ${t.columns}, ${COMMON} FROM ${t.table} ORDER BY id DESC`;
    return db.$queryRawUnsafe<T[]>(sql, ...("asOf" in options ? [options.asOf] : []));
  };
  const [hardware, models, modelHardware] = await Promise.all([
    read<HardwarePriceRow>(TABLES.hardware),
    read<ModelPriceRow>(TABLES.models),
    read<ModelHardwareRow>(TABLES.modelHardware),
  ]);
  // Unset mappings are history, not prices in force.
  return { hardware, models, modelHardware: "asOf" in options ? modelHardware.filter((m) => m.sku !== null) : modelHardware };
}

export async function recordHardwarePrice(db: Db, p: HardwarePriceInput): Promise<HardwarePriceRow> {
  return insert<HardwarePriceRow>(
    db,
    TABLES.hardware,
    `(sku, usd_per_second, effective_from, source) VALUES ($1, $2::numeric, $3::date, $4)`,
    [p.sku, p.usdPerSecond, p.effectiveFrom, p.source],
  );
}

export async function recordModelPrice(db: Db, p: ModelPriceInput): Promise<ModelPriceRow> {
  return insert<ModelPriceRow>(
    db,
    TABLES.models,
    `(model, unit, usd_per_unit, effective_from, source) VALUES ($1, $2::"ModelPriceUnit", $3::numeric, $4::date, $5)`,
    [p.model, p.unit, p.usdPerUnit, p.effectiveFrom, p.source],
  );
}

/** Records the mapping only when the SKU is unset or has a price on its first day (null otherwise). */
export async function recordModelHardware(db: Db, p: ModelHardwareInput): Promise<ModelHardwareRow | null> {
  return insert<ModelHardwareRow | null>(
    db,
    TABLES.modelHardware,
    `(model, sku, effective_from, source) SELECT $1, $2, $3::date, $4
     WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM hardware_prices h WHERE h.sku = $2 AND h.effective_from <= $3::date)`,
    [p.model, p.sku, p.effectiveFrom, p.source],
  );
}

async function insert<T>(db: Db, t: (typeof TABLES)[keyof typeof TABLES], values: string, params: unknown[]): Promise<T> {
  const [row] = await db.$queryRawUnsafe<T[]>(`INSERT INTO ${t.table} ${values} RETURNING ${t.columns}, ${COMMON}`, ...params);
  return (row ?? null) as T;
}
