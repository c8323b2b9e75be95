-- AlterTable
ALTER TABLE "prediction_records" ADD COLUMN     "data_removed" BOOLEAN,
ADD COLUMN     "input_tokens" BIGINT,
ADD COLUMN     "output_tokens" BIGINT;

-- AlterTable
ALTER TABLE "daily_usage" DROP CONSTRAINT "daily_usage_pkey",
ADD COLUMN     "billable_seconds" DECIMAL(20,6) NOT NULL DEFAULT 0,
ADD COLUMN     "input_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "output_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "source" TEXT NOT NULL DEFAULT '',
ADD CONSTRAINT "daily_usage_pkey" PRIMARY KEY ("connection_id", "usage_date", "model", "deployment", "source");

-- Written by hand: DailyUsage must stay equal to a GROUP BY over the ledger, which now splits by
-- source and sums billable seconds, so existing rows are rebuilt from the ledger.
DELETE FROM "daily_usage";
INSERT INTO "daily_usage" (connection_id, workspace_id, usage_date, model, deployment, source, predictions, succeeded, failed,
                           canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions,
                           billable_seconds, input_tokens, output_tokens, updated_at)
SELECT p.connection_id, c.workspace_id, p.usage_date, p.model, p.deployment, coalesce(p.source, ''),
       count(*)::int,
       count(*) FILTER (WHERE p.status = 'succeeded')::int,
       count(*) FILTER (WHERE p.status = 'failed')::int,
       count(*) FILTER (WHERE p.status = 'canceled')::int,
       count(*) FILTER (WHERE p.status = 'aborted')::int,
       count(*) FILTER (WHERE p.status IN ('starting', 'processing'))::int,
       count(*) FILTER (WHERE p.status NOT IN ('succeeded', 'failed', 'canceled', 'aborted', 'starting', 'processing'))::int,
       coalesce(sum(round(p.predict_time::numeric, 6)), 0),
       coalesce(sum(round(p.total_time::numeric, 6)), 0),
       count(p.predict_time)::int,
       coalesce(sum(round(p.predict_time::numeric, 6)) FILTER (WHERE p.status <> 'aborted'), 0),
       0, 0, now()
FROM "prediction_records" p JOIN "connections" c ON c.id = p.connection_id
GROUP BY p.connection_id, c.workspace_id, p.usage_date, p.model, p.deployment, coalesce(p.source, '');
