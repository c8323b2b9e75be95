-- CreateIndex
CREATE INDEX "integration_events_connection_id_kind_occurred_at_id_idx" ON "integration_events"("connection_id", "kind", "occurred_at" DESC, "id" DESC);
