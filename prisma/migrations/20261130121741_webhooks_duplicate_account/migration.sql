-- CreateEnum
CREATE TYPE "WebhookDeliveryStatus" AS ENUM ('pending', 'queued', 'delivered', 'failed', 'expired');

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "duplicate_of" UUID;

-- CreateTable
CREATE TABLE "webhook_deliveries" (
    "id" BIGSERIAL NOT NULL,
    "event_id" BIGINT NOT NULL,
    "connection_id" UUID NOT NULL,
    "type" TEXT NOT NULL,
    "status" "WebhookDeliveryStatus" NOT NULL DEFAULT 'pending',
    "payload" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_http_status" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "delivered_at" TIMESTAMPTZ(3),

    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "webhook_deliveries_connection_id_created_at_idx" ON "webhook_deliveries"("connection_id", "created_at" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "webhook_deliveries_event_id_type_key" ON "webhook_deliveries"("event_id", "type");

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "integration_events"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Written by hand from here on.

-- Connections that already count an account a second time in a workspace (the older one, by
-- verification, keeps counting) become duplicates, with the event that says so.
WITH ranked AS (
  SELECT id, first_value(id) OVER w AS keeper, row_number() OVER w AS n, account_type, account_username
  FROM "connections"
  WHERE status <> 'disconnected' AND account_username IS NOT NULL
  WINDOW w AS (PARTITION BY workspace_id, account_type, account_username ORDER BY verified_at NULLS LAST, created_at, id)
), demoted AS (
  UPDATE "connections" c SET status = 'credential_error', duplicate_of = r.keeper, sync_state = NULL, updated_at = now()
  FROM ranked r WHERE c.id = r.id AND r.n > 1
  RETURNING c.id, r.keeper, r.account_type, r.account_username
)
INSERT INTO "integration_events" (connection_id, kind, level, message, detail)
SELECT id, 'duplicate_account', 'error',
       'Replicate ' || account_type || ' "' || account_username || '" is already connected in this workspace as connection ' || keeper || '; this connection does not sync, so its usage is not counted twice',
       jsonb_build_object('duplicateOf', keeper, 'accountType', account_type, 'username', account_username)
FROM demoted;

-- One Replicate account counts once per workspace: two verifications racing each other serialise
-- here, and the loser becomes a duplicate (src/repositories/connections.ts).
CREATE UNIQUE INDEX "connections_one_account_per_workspace" ON "connections" ("workspace_id", "account_type", "account_username")
  WHERE status <> 'disconnected' AND account_username IS NOT NULL AND duplicate_of IS NULL;

CREATE INDEX "webhook_deliveries_pending_idx" ON "webhook_deliveries" ("id") WHERE status = 'pending';

-- The webhook outbox: the webhook a state change causes is recorded by the same statement as the
-- event, so it cannot be lost between the change and the enqueue (Redis down, process killed).
CREATE FUNCTION "integration_events_webhooks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_ok integration_events%ROWTYPE;
  types text[] := '{}';
BEGIN
  IF NEW.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account') THEN
    types := ARRAY['connection.action_required'];
  ELSIF NEW.kind = 'sync_failed' THEN
    types := ARRAY['sync.failed'];
  ELSIF NEW.kind = 'disconnected' THEN
    types := ARRAY['connection.disconnected'];
  ELSIF NEW.kind IN ('verified', 'sync_completed') THEN
    IF NEW.kind = 'verified' THEN
      types := ARRAY['connection.verified'];
    END IF;
    -- The previous success (each probe is a LIMIT 1 on the (connection, kind, occurred_at) index).
    SELECT * INTO last_ok FROM (
      (SELECT * FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = 'verified' AND e.id <> NEW.id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)
      UNION ALL
      (SELECT * FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = 'sync_completed' AND e.id <> NEW.id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)
    ) p ORDER BY p.id DESC LIMIT 1;
    IF NEW.kind = 'sync_completed' AND NOT EXISTS (
      SELECT 1 FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = 'sync_completed' AND e.id <> NEW.id
    ) THEN
      types := types || 'backfill.completed'::text;
    END IF;
    -- Recovered: a failure that needed action or stopped a run happened since the previous success.
    IF EXISTS (
      SELECT 1 FROM integration_events e
      WHERE e.connection_id = NEW.connection_id AND e.level = 'error' AND e.id <> NEW.id
        AND e.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account', 'provider_error',
                       'foreign_link_refused', 'sync_failed')
        AND (last_ok.id IS NULL OR (e.occurred_at >= last_ok.occurred_at AND e.id > last_ok.id))
    ) THEN
      types := types || 'connection.recovered'::text;
    END IF;
  END IF;
  INSERT INTO webhook_deliveries (event_id, connection_id, type) SELECT NEW.id, NEW.connection_id, t FROM unnest(types) t;
  RETURN NULL;
END $$;
CREATE TRIGGER "integration_events_webhooks" AFTER INSERT ON "integration_events"
  FOR EACH ROW EXECUTE FUNCTION "integration_events_webhooks"();
