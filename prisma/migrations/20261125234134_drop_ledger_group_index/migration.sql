-- DailyUsage is updated by per-page deltas now; nothing reads the ledger by (day, model, deployment),
-- so this index only slowed every page write.
-- DropIndex
DROP INDEX "prediction_records_connection_id_usage_date_model_deploymen_idx";
