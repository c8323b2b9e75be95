-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "EventKind" ADD VALUE 'history_moved';
ALTER TYPE "EventKind" ADD VALUE 'account_changed';

-- A token of another Replicate account pasted into a connection pauses it like a rejected token:
-- the backend hears connection.action_required, then connection.recovered after a good token.
CREATE OR REPLACE FUNCTION "integration_events_webhooks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_ok integration_events%ROWTYPE;
  types text[] := '{}';
BEGIN
  IF NEW.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account', 'account_changed') THEN
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
        AND e.kind IN ('credential_invalid', 'scope_denied', 'token_unreadable', 'duplicate_account', 'account_changed', 'provider_error',
                       'foreign_link_refused', 'sync_failed')
        AND (last_ok.id IS NULL OR (e.occurred_at >= last_ok.occurred_at AND e.id > last_ok.id))
    ) THEN
      types := types || 'connection.recovered'::text;
    END IF;
  END IF;
  INSERT INTO webhook_deliveries (event_id, connection_id, type) SELECT NEW.id, NEW.connection_id, t FROM unnest(types) t;
  RETURN NULL;
END $$;
