-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "ConnectionStatus" AS ENUM ('pending', 'connected', 'credential_error', 'disconnected');

-- CreateEnum
CREATE TYPE "AccountType" AS ENUM ('user', 'organization');

-- CreateEnum
CREATE TYPE "EventLevel" AS ENUM ('info', 'warn', 'error');

-- CreateEnum
CREATE TYPE "EventKind" AS ENUM ('connected', 'token_replaced', 'verified', 'credential_invalid', 'scope_denied', 'rate_limited', 'provider_error', 'foreign_link_refused', 'sync_started', 'sync_completed', 'sync_failed', 'disconnected');

-- CreateTable
CREATE TABLE "connections" (
    "id" UUID NOT NULL,
    "workspace_id" TEXT NOT NULL,
    "status" "ConnectionStatus" NOT NULL DEFAULT 'pending',
    "token_ciphertext" TEXT,
    "token_key_id" TEXT,
    "account_username" TEXT,
    "account_type" "AccountType",
    "verified_at" TIMESTAMPTZ(3),
    "last_sync_started_at" TIMESTAMPTZ(3),
    "last_synced_at" TIMESTAMPTZ(3),
    "high_water_mark" TIMESTAMPTZ(3),
    "sync_state" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "prediction_records" (
    "connection_id" UUID NOT NULL,
    "prediction_id" TEXT NOT NULL,
    "usage_date" DATE NOT NULL,
    "model" TEXT NOT NULL DEFAULT '',
    "version" TEXT,
    "deployment" TEXT NOT NULL DEFAULT '',
    "status" TEXT NOT NULL,
    "source" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "started_at" TIMESTAMPTZ(3),
    "completed_at" TIMESTAMPTZ(3),
    "predict_time" DOUBLE PRECISION,
    "total_time" DOUBLE PRECISION,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "prediction_records_pkey" PRIMARY KEY ("connection_id","prediction_id")
);

-- CreateTable
CREATE TABLE "daily_usage" (
    "connection_id" UUID NOT NULL,
    "workspace_id" TEXT NOT NULL,
    "usage_date" DATE NOT NULL,
    "model" TEXT NOT NULL,
    "deployment" TEXT NOT NULL,
    "predictions" INTEGER NOT NULL,
    "succeeded" INTEGER NOT NULL,
    "failed" INTEGER NOT NULL,
    "canceled" INTEGER NOT NULL,
    "aborted" INTEGER NOT NULL,
    "in_progress" INTEGER NOT NULL,
    "other" INTEGER NOT NULL,
    "compute_seconds" DECIMAL(20,6) NOT NULL,
    "total_seconds" DECIMAL(20,6) NOT NULL,
    "metered_predictions" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "daily_usage_pkey" PRIMARY KEY ("connection_id","usage_date","model","deployment")
);

-- CreateTable
CREATE TABLE "integration_events" (
    "id" BIGSERIAL NOT NULL,
    "connection_id" UUID NOT NULL,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "kind" "EventKind" NOT NULL,
    "level" "EventLevel" NOT NULL,
    "message" TEXT NOT NULL,
    "http_status" INTEGER,
    "retry_after_seconds" INTEGER,
    "job_id" TEXT,
    "detail" JSONB,

    CONSTRAINT "integration_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "connections_workspace_id_idx" ON "connections"("workspace_id");

-- CreateIndex
CREATE INDEX "connections_status_idx" ON "connections"("status");

-- CreateIndex
CREATE INDEX "prediction_records_connection_id_usage_date_model_deploymen_idx" ON "prediction_records"("connection_id", "usage_date", "model", "deployment");

-- CreateIndex (hand-written: partial, for the oldest unfinished prediction of a connection)
CREATE INDEX "prediction_records_unfinished_idx" ON "prediction_records"("connection_id", "created_at")
  WHERE "status" NOT IN ('succeeded', 'failed', 'canceled', 'aborted');

-- CreateIndex
CREATE INDEX "daily_usage_workspace_id_usage_date_idx" ON "daily_usage"("workspace_id", "usage_date");

-- CreateIndex
CREATE INDEX "integration_events_connection_id_occurred_at_id_idx" ON "integration_events"("connection_id", "occurred_at" DESC, "id" DESC);

-- AddForeignKey
ALTER TABLE "prediction_records" ADD CONSTRAINT "prediction_records_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "daily_usage" ADD CONSTRAINT "daily_usage_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "integration_events" ADD CONSTRAINT "integration_events_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Support staff read the event log as history: rows may be added, never rewritten.
CREATE FUNCTION "integration_events_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'integration_events is append-only';
END
$$;
CREATE TRIGGER "integration_events_append_only" BEFORE UPDATE OR DELETE ON "integration_events"
  FOR EACH ROW EXECUTE FUNCTION "integration_events_append_only"();
