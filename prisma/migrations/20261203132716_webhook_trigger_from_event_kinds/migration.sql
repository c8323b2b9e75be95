-- Generated from src/domain/event-kinds.ts (webhookTriggerSql): the webhooks an event kind sends, and
-- connection.recovered after a recovery that follows an error.
CREATE OR REPLACE FUNCTION "integration_events_webhooks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_ok integration_events%ROWTYPE;
  types text[] := '{}';
BEGIN
  IF NEW.kind IN ('verified') THEN
    types := types || 'connection.verified'::text;
  END IF;
  IF NEW.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account', 'account_changed') THEN
    types := types || 'connection.action_required'::text;
  END IF;
  IF NEW.kind IN ('disconnected') THEN
    types := types || 'connection.disconnected'::text;
  END IF;
  IF NEW.kind IN ('sync_failed') THEN
    types := types || 'sync.failed'::text;
  END IF;
  IF NEW.kind IN ('sync_completed') AND NOT EXISTS (
    SELECT 1 FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = NEW.kind AND e.id <> NEW.id
  ) THEN
    types := types || 'backfill.completed'::text;
  END IF;
  IF NEW.kind IN ('history_erased') THEN
    types := types || 'connection.erased'::text;
  END IF;
  IF NEW.kind IN ('verified', 'sync_completed') THEN
    -- The previous recovery (each probe is a LIMIT 1 on the (connection, kind, occurred_at) index).
    SELECT * INTO last_ok FROM (
      (SELECT * FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = 'verified' AND e.id <> NEW.id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)
      UNION ALL
      (SELECT * FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = 'sync_completed' AND e.id <> NEW.id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)
    ) p ORDER BY p.id DESC LIMIT 1;
    IF EXISTS (
      SELECT 1 FROM integration_events e
      WHERE e.connection_id = NEW.connection_id AND e.level = 'error' AND e.id <> NEW.id
        AND e.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account', 'account_changed', 'provider_error', 'foreign_link_refused', 'sync_failed')
        AND (last_ok.id IS NULL OR (e.occurred_at >= last_ok.occurred_at AND e.id > last_ok.id))
    ) THEN
      types := types || 'connection.recovered'::text;
    END IF;
  END IF;
  INSERT INTO webhook_deliveries (event_id, connection_id, type) SELECT NEW.id, NEW.connection_id, t FROM unnest(types) t;
  RETURN NULL;
END $$;
