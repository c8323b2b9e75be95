import type { Db } from "../db/client.js";
import type { HardwarePriceInput, ModelHardwareInput, ModelPriceInput } from "../pricing/schemas.js";

// The price book is append-only: a change is a new row, and for a key and a day the row with the
// latest effective_from, then the latest id, applies. These fragments resolve one price for a day
// (`day` is any SQL date expression) and are shared with the usage query.

/** USD per second of `skuExpr` on `day`. */
export const hardwarePriceAt = (skuExpr: string, day: string) =>
  `(SELECT h.usd_per_second FROM hardware_prices h WHERE h.sku = ${skuExpr} AND h.effective_from <= ${day}
    ORDER BY h.effective_from DESC, h.id DESC LIMIT 1)`;

/** USD per unit of `modelExpr` on `day`. */
export const modelPriceAt = (modelExpr: string, unit: string, day: string) =>
  `(SELECT m.usd_per_unit FROM model_prices m WHERE m.model = ${modelExpr} AND m.unit = '${unit}' AND m.effective_from <= ${day}
    ORDER BY m.effective_from DESC, m.id DESC LIMIT 1)`;

/** The SKU an operator mapped `modelExpr` to on `day` (null when unmapped). */
export const modelSkuAt = (modelExpr: string, day: string) =>
  `(SELECT mh.sku FROM model_hardware mh WHERE mh.model = ${modelExpr} AND mh.effective_from <= ${day}
    ORDER BY mh.effective_from DESC, mh.id DESC LIMIT 1)`;

export interface PriceRow {
  id: string;
  effectiveFrom: string;
  source: string;
  recordedAt: Date;
}
export type HardwarePriceRow = PriceRow & { sku: string; usdPerSecond: string };
export type ModelPriceRow = PriceRow & { model: string; unit: string; usdPerUnit: string };
export type ModelHardwareRow = PriceRow & { model: string; sku: string | null };

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

export interface PriceBook {
  hardware: HardwarePriceRow[];
  models: ModelPriceRow[];
  modelHardware: ModelHardwareRow[];
}

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
