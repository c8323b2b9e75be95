-- CreateEnum
CREATE TYPE "ModelPriceUnit" AS ENUM ('input_token', 'output_token', 'prediction');

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "deployments_checked_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "deployments" (
    "connection_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "release_number" INTEGER NOT NULL,
    "model" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "hardware" TEXT NOT NULL,
    "min_instances" INTEGER NOT NULL,
    "max_instances" INTEGER NOT NULL,
    "effective_from" DATE NOT NULL,
    "last_seen_on" DATE NOT NULL,

    CONSTRAINT "deployments_pkey" PRIMARY KEY ("connection_id","name","release_number")
);

-- CreateTable
CREATE TABLE "hardware_prices" (
    "id" BIGSERIAL NOT NULL,
    "sku" TEXT NOT NULL,
    "usd_per_second" DECIMAL(24,12) NOT NULL,
    "effective_from" DATE NOT NULL,
    "source" TEXT NOT NULL,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "hardware_prices_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "model_prices" (
    "id" BIGSERIAL NOT NULL,
    "model" TEXT NOT NULL,
    "unit" "ModelPriceUnit" NOT NULL,
    "usd_per_unit" DECIMAL(24,15) NOT NULL,
    "effective_from" DATE NOT NULL,
    "source" TEXT NOT NULL,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "model_prices_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "model_hardware" (
    "id" BIGSERIAL NOT NULL,
    "model" TEXT NOT NULL,
    "sku" TEXT,
    "effective_from" DATE NOT NULL,
    "source" TEXT NOT NULL,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "model_hardware_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "hardware_prices_sku_effective_from_idx" ON "hardware_prices"("sku", "effective_from");

-- CreateIndex
CREATE INDEX "model_prices_model_unit_effective_from_idx" ON "model_prices"("model", "unit", "effective_from");

-- CreateIndex
CREATE INDEX "model_hardware_model_effective_from_idx" ON "model_hardware"("model", "effective_from");

-- AddForeignKey
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Written by hand: the price book is append-only (a change is a new row), and prices are never negative.
CREATE FUNCTION "price_book_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: record a new row instead', TG_TABLE_NAME;
END $$;
CREATE TRIGGER "hardware_prices_append_only" BEFORE UPDATE OR DELETE ON "hardware_prices"
  FOR EACH ROW EXECUTE FUNCTION "price_book_append_only"();
CREATE TRIGGER "model_prices_append_only" BEFORE UPDATE OR DELETE ON "model_prices"
  FOR EACH ROW EXECUTE FUNCTION "price_book_append_only"();
CREATE TRIGGER "model_hardware_append_only" BEFORE UPDATE OR DELETE ON "model_hardware"
  FOR EACH ROW EXECUTE FUNCTION "price_book_append_only"();
ALTER TABLE "hardware_prices" ADD CONSTRAINT "hardware_prices_usd_nonnegative" CHECK ("usd_per_second" >= 0);
ALTER TABLE "model_prices" ADD CONSTRAINT "model_prices_usd_nonnegative" CHECK ("usd_per_unit" >= 0);

-- Seed: Replicate's published per-second hardware prices (replicate.com/pricing, 2025-2026); the
-- 2x/4x/8x multi-GPU SKUs cost that multiple of the single GPU.
INSERT INTO "hardware_prices" ("sku", "usd_per_second", "effective_from", "source")
SELECT sku, price, DATE '2025-01-01', 'replicate.com/pricing (published table, seeded by migration)'
FROM (VALUES ('cpu', 0.000100), ('gpu-t4', 0.000225), ('gpu-a40-small', 0.000575), ('gpu-a40-large', 0.000725),
             ('gpu-l40s', 0.000975), ('gpu-a100-large', 0.001400), ('gpu-h100', 0.001525)) AS base(sku, price)
UNION ALL
SELECT base.sku || '-' || n || 'x', base.price * n, DATE '2025-01-01',
       'replicate.com/pricing (published table, seeded by migration; ' || n || 'x the single GPU)'
FROM (VALUES ('gpu-t4', 0.000225), ('gpu-a40-small', 0.000575), ('gpu-a40-large', 0.000725), ('gpu-l40s', 0.000975),
             ('gpu-a100-large', 0.001400), ('gpu-h100', 0.001525)) AS base(sku, price)
CROSS JOIN (VALUES (2), (4), (8)) AS multiple(n);
