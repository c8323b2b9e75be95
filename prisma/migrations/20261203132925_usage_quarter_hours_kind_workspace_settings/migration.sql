-- Usage moves from UTC days (daily_usage) to UTC quarter hours (usage_buckets), so a day in any time
-- zone is an exact sum; the ledger and usage gain a kind (prediction | training); workspaces get settings.
-- Written by hand around Prisma's diff: every count of daily_usage is carried over, none is lost.

-- CreateEnum
CREATE TYPE "UsageKind" AS ENUM ('prediction', 'training');

-- AlterTable: every existing ledger row is a prediction; the kind joins the key.
ALTER TABLE "prediction_records" DROP CONSTRAINT "prediction_records_pkey",
ADD COLUMN     "kind" "UsageKind" NOT NULL DEFAULT 'prediction',
ADD CONSTRAINT "prediction_records_pkey" PRIMARY KEY ("connection_id", "kind", "prediction_id");

-- CreateTable
CREATE TABLE "usage_buckets" (
    "connection_id" UUID NOT NULL,
    "workspace_id" TEXT NOT NULL,
    "bucket_start" TIMESTAMPTZ(3) NOT NULL,
    "bucket_minutes" SMALLINT NOT NULL DEFAULT 15,
    "kind" "UsageKind" NOT NULL DEFAULT 'prediction',
    "model" TEXT NOT NULL,
    "deployment" TEXT NOT NULL,
    "source" TEXT NOT NULL DEFAULT '',
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
    "billable_seconds" DECIMAL(20,6) NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_buckets_pkey" PRIMARY KEY ("connection_id","bucket_start","bucket_minutes","kind","model","deployment","source")
);

-- Written by hand: the predictions the ledger still holds of each daily row, summed per quarter hour
-- exactly as the write statement sums them (src/domain/usage-measures.ts). Only ledger rows of a
-- daily row are taken, so nothing that daily_usage did not count starts counting.
CREATE TEMP TABLE "held_quarter_hours" ON COMMIT DROP AS
SELECT p.connection_id, d.workspace_id, p.usage_date, date_bin('15 minutes', p.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket_start,
       p.model, p.deployment, d.source,
       count(*)::int AS predictions,
       count(*) FILTER (WHERE p.status = 'succeeded')::int AS succeeded,
       count(*) FILTER (WHERE p.status = 'failed')::int AS failed,
       count(*) FILTER (WHERE p.status = 'canceled')::int AS canceled,
       count(*) FILTER (WHERE p.status = 'aborted')::int AS aborted,
       count(*) FILTER (WHERE p.status IN ('starting', 'processing'))::int AS in_progress,
       count(*) FILTER (WHERE p.status NOT IN ('succeeded', 'failed', 'canceled', 'aborted', 'starting', 'processing'))::int AS other,
       coalesce(sum(round(p.predict_time::numeric, 6)), 0) AS compute_seconds,
       coalesce(sum(round(p.total_time::numeric, 6)), 0) AS total_seconds,
       count(p.predict_time)::int AS metered_predictions,
       coalesce(sum(round(p.predict_time::numeric, 6)) FILTER (WHERE p.status <> 'aborted'), 0) AS billable_seconds,
       coalesce(sum(p.input_tokens) FILTER (WHERE p.status <> 'aborted'), 0)::bigint AS input_tokens,
       coalesce(sum(p.output_tokens) FILTER (WHERE p.status <> 'aborted'), 0)::bigint AS output_tokens,
       max(p.updated_at) AS updated_at
FROM "prediction_records" p
JOIN "daily_usage" d ON d.connection_id = p.connection_id AND d.usage_date = p.usage_date AND d.model = p.model
                    AND d.deployment = p.deployment AND d.source = coalesce(p.source, '')
GROUP BY p.connection_id, d.workspace_id, p.usage_date, 4, p.model, p.deployment, d.source;

INSERT INTO "usage_buckets" (connection_id, workspace_id, bucket_start, bucket_minutes, kind, model, deployment, source, predictions,
                             succeeded, failed, canceled, aborted, in_progress, other, compute_seconds, total_seconds,
                             metered_predictions, billable_seconds, input_tokens, output_tokens, updated_at)
SELECT connection_id, workspace_id, bucket_start, 15, 'prediction', model, deployment, source, predictions,
       succeeded, failed, canceled, aborted, in_progress, other, compute_seconds, total_seconds,
       metered_predictions, billable_seconds, input_tokens, output_tokens, updated_at
FROM "held_quarter_hours";

-- Written by hand: what a daily row counted beyond what the ledger still holds (predictions pruned
-- from the ledger) stays as one whole UTC day (bucket_minutes 1440), so every total is unchanged.
INSERT INTO "usage_buckets" (connection_id, workspace_id, bucket_start, bucket_minutes, kind, model, deployment, source, predictions,
                             succeeded, failed, canceled, aborted, in_progress, other, compute_seconds, total_seconds,
                             metered_predictions, billable_seconds, input_tokens, output_tokens, updated_at)
SELECT r.* FROM (
  SELECT d.connection_id, d.workspace_id, d.usage_date::timestamp AT TIME ZONE 'UTC', 1440, 'prediction'::"UsageKind", d.model, d.deployment, d.source,
         d.predictions - coalesce(sum(h.predictions), 0) AS predictions,
         d.succeeded - coalesce(sum(h.succeeded), 0) AS succeeded,
         d.failed - coalesce(sum(h.failed), 0) AS failed,
         d.canceled - coalesce(sum(h.canceled), 0) AS canceled,
         d.aborted - coalesce(sum(h.aborted), 0) AS aborted,
         d.in_progress - coalesce(sum(h.in_progress), 0) AS in_progress,
         d.other - coalesce(sum(h.other), 0) AS other,
         d.compute_seconds - coalesce(sum(h.compute_seconds), 0) AS compute_seconds,
         d.total_seconds - coalesce(sum(h.total_seconds), 0) AS total_seconds,
         d.metered_predictions - coalesce(sum(h.metered_predictions), 0) AS metered_predictions,
         d.billable_seconds - coalesce(sum(h.billable_seconds), 0) AS billable_seconds,
         d.input_tokens - coalesce(sum(h.input_tokens), 0) AS input_tokens,
         d.output_tokens - coalesce(sum(h.output_tokens), 0) AS output_tokens,
         d.updated_at
  FROM "daily_usage" d
  LEFT JOIN "held_quarter_hours" h ON h.connection_id = d.connection_id AND h.usage_date = d.usage_date AND h.model = d.model
                                  AND h.deployment = d.deployment AND h.source = d.source
  GROUP BY d.connection_id, d.usage_date, d.model, d.deployment, d.source
) r
WHERE (r.predictions, r.succeeded, r.failed, r.canceled, r.aborted, r.in_progress, r.other, r.compute_seconds, r.total_seconds,
       r.metered_predictions, r.billable_seconds, r.input_tokens, r.output_tokens) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

-- DropForeignKey
ALTER TABLE "daily_usage" DROP CONSTRAINT "daily_usage_connection_id_fkey";

-- DropTable
DROP TABLE "daily_usage";

-- AlterTable: the quarter hour is derived from created_at.
ALTER TABLE "prediction_records" DROP COLUMN "usage_date";

-- CreateTable
CREATE TABLE "workspace_settings" (
    "workspace_id" TEXT NOT NULL,
    "time_zone" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "workspace_settings_pkey" PRIMARY KEY ("workspace_id")
);

-- CreateIndex
CREATE INDEX "usage_buckets_workspace_id_bucket_start_idx" ON "usage_buckets"("workspace_id", "bucket_start");

-- AddForeignKey
ALTER TABLE "usage_buckets" ADD CONSTRAINT "usage_buckets_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
