import type { AccountRef } from "./account.js";
import type { EventKind, EventLevel } from "../generated/prisma/enums.js";
import { sqlList } from "./prediction-status.js";

// What each event kind means: failures, health, connection views and the webhook trigger derive from it (test/unit/event-kinds.test.ts).

const WEBHOOK_TYPES = [
  "connection.verified",
  "connection.action_required",
  "connection.recovered",
  "connection.disconnected",
  "sync.failed",
  "backfill.completed",
  "connection.erased",
] as const;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

/** What the texts of an error may name; `verified`: a 401 then means revoked, not mistyped. */
type ErrorContext = { verified: boolean; duplicateOf: string | null; account: AccountRef | null };

interface ErrorMeaning {
  state: "action_required" | "failing";
  /** lastError.message */
  text: string;
  message: (c: ErrorContext) => string;
  /** Absent when the service retries on its own; done by the customer unless `actionBy`. */
  action?: (c: ErrorContext) => string;
  actionBy?: "operator";
}

type WarningMeaning = { endedBy: EventKind; message: (detail: { endpoint: string; httpStatus: number | null }) => string };

export interface KindMeaning {
  /** For a retried kind: at warn while retried, at `level` once retrying stops. */
  level: EventLevel;
  retried?: true;
  /** Current until a later success; `action_required` pauses the connection until the token is replaced. */
  error?: ErrorMeaning;
  /** A recovery ends the current error (connection.recovered when there was one); a reset only makes it stale. */
  success?: "recovery" | "reset";
  webhook?: WebhookType;
  /** Sends its webhook the first time only. */
  webhookOnce?: true;
  /** A degraded optional read: a health warning until `endedBy` for the same endpoint. */
  warning?: WarningMeaning;
}

const NEW_TOKEN = "Ask the customer to create a new API token in the Replicate organization that owns the usage and paste it again.";
const synced = (c: ErrorContext) => (c.account ? `${c.account.type} "${c.account.username}"` : "account");

/** Optional reads and what is missing while one fails. */
const ENRICHMENTS: Record<string, { what: string; missing: string }> = {
  "/v1/deployments": { what: "Deployments", missing: "the cost of deployment usage is shown as unpriced until the read succeeds" },
};

/** An error that pauses the connection until someone acts (connection.action_required). */
const pauses = (error: Omit<ErrorMeaning, "state">) =>
  ({ level: "error", webhook: "connection.action_required", error: { ...error, state: "action_required" } }) as const;

/** Every kind of the EventKind enum, in the order the support page's filter offers them. */
export const EVENT_KINDS = {
  connected: { level: "info" },
  token_replaced: { level: "info", success: "reset" },
  verified: { level: "info", success: "recovery", webhook: "connection.verified" },
  credential_invalid: pauses({
    text: "Replicate rejected the token.",
    message: (c) =>
      c.verified
        ? "Replicate no longer accepts the stored token (revoked or expired), so syncing is paused."
        : "Replicate rejected the token the first time it was checked, so nothing has been synced.",
    action: (c) =>
      c.verified ? NEW_TOKEN : "Ask the customer to copy the token again from replicate.com/account/api-tokens and paste it whole.",
  }),
  scope_denied: pauses({
    text: "The token may not read this account's predictions.",
    message: () => "The token works but may not read this account's predictions, so syncing is paused.",
    action: () => "Ask the customer for a token created in the Replicate organization that owns the usage, and to paste it again.",
  }),
  token_unreadable: pauses({
    text: "The stored token cannot be decrypted with the configured keys.",
    message: () =>
      "The stored token cannot be decrypted with the configured keys (the key it was encrypted with is not in TOKEN_ENCRYPTION_KEYS), so syncing is paused; the token itself may still be valid.",
    action: () =>
      "Restore the missing key in TOKEN_ENCRYPTION_KEYS and restart the service (every token encrypted with it fails alike); this connection is then verified again and resumes by itself.",
    actionBy: "operator",
  }),
  token_readable: { level: "info", success: "reset" },
  duplicate_account: pauses({
    text: "This Replicate account is already connected in this workspace.",
    message: (c) =>
      `This Replicate account is already connected in this workspace as connection ${c.duplicateOf}, so this connection does not sync (its usage would be counted twice).`,
    action: (c) =>
      `Nothing is needed if connection ${c.duplicateOf} is the one the customer wants. To use this one instead, disconnect ${c.duplicateOf}, then paste the token here again.`,
  }),
  account_changed: pauses({
    text: "The new token belongs to another Replicate account than the one this connection syncs.",
    message: (c) =>
      `The token pasted last belongs to another Replicate account than the ${synced(c)} this connection syncs, so it was not used and syncing is paused.`,
    action: (c) =>
      `Ask the customer for a token of the Replicate ${synced(c)} and to paste it here. To sync the other account, create a new connection for it.`,
  }),
  history_moved: { level: "info" },
  rate_limited: { level: "warn" },
  provider_error: {
    level: "error",
    retried: true,
    error: {
      state: "failing",
      text: "Replicate's API failed (a server error, a timeout or a malformed answer).",
      message: () => "Replicate's API kept failing, so the connection could not be checked or synced; it is tried again on the next run.",
    },
  },
  foreign_link_refused: {
    level: "error",
    error: {
      state: "failing",
      text: "Replicate sent a pagination link to another host; it was not followed.",
      message: () => "Replicate sent a pagination link to another host, so the run was stopped; the next scheduled run starts again.",
    },
  },
  sync_started: { level: "info" },
  sync_completed: { level: "info", success: "recovery", webhook: "backfill.completed", webhookOnce: true },
  sync_failed: {
    level: "error",
    webhook: "sync.failed",
    error: {
      state: "failing",
      text: "The sync run failed after its retries.",
      message: () => "Replicate's API kept failing, so the last sync run stopped; the next scheduled run resumes where it stopped.",
    },
  },
  disconnected: { level: "info", webhook: "connection.disconnected" },
  record_rejected: { level: "warn" },
  webhook_delivered: { level: "info" },
  webhook_failed: { level: "error", retried: true },
  enrichment_failed: {
    level: "warn",
    warning: {
      endedBy: "enrichment_recovered",
      message: ({ endpoint, httpStatus }) => {
        const read = ENRICHMENTS[endpoint] ?? { what: endpoint, missing: "what it adds is missing until the read succeeds" };
        const status = httpStatus ? ` (HTTP ${httpStatus})` : "";
        return `${read.what} could not be read from Replicate${status}; usage still syncs; ${read.missing}; it is tried again at every run.`;
      },
    },
  },
  enrichment_recovered: { level: "info" },
  history_erased: { level: "info", webhook: "connection.erased" },
} as const satisfies Record<EventKind, KindMeaning>;

type KindsWith<P> = { [K in EventKind]: (typeof EVENT_KINDS)[K] extends P ? K : never }[EventKind];

export type ErrorKind = KindsWith<{ error: object }>;
export type WarningKind = KindsWith<{ warning: object }>;
export const errorOf = (kind: ErrorKind): ErrorMeaning => EVENT_KINDS[kind].error;
export const warningOf = (kind: WarningKind): WarningMeaning => EVENT_KINDS[kind].warning;
const meanings = Object.entries(EVENT_KINDS) as [EventKind, KindMeaning][];
/** In table order. */
const kindsWhere = (test: (m: KindMeaning) => boolean) => meanings.filter(([, m]) => test(m)).map(([k]) => k);

export const ERROR_KINDS = kindsWhere((m) => m.error !== undefined) as ErrorKind[];
export type PauseKind = KindsWith<{ error: { state: "action_required" } }>;
export const PAUSE_KINDS = kindsWhere((m) => m.error?.state === "action_required") as PauseKind[];
export const RETRIED_ERROR_KINDS = kindsWhere((m) => m.error !== undefined && m.retried === true) as ErrorKind[];
export const RECOVERY_KINDS = kindsWhere((m) => m.success === "recovery");
/** After these, an earlier error is no longer current. */
export const SUCCESS_KINDS = kindsWhere((m) => m.success !== undefined);
export const WARNING_KINDS = kindsWhere((m) => m.warning !== undefined) as WarningKind[];
/** The latest warning or end per endpoint says whether a warning is current. */
export const WARNING_END_KINDS = meanings.flatMap(([, m]) => m.warning?.endedBy ?? []);

const probeLastOk = (kind: EventKind) =>
  `(SELECT * FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = '${kind}' AND e.id <> NEW.id
        ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1)`;

/** The webhook trigger function; a migration carries it verbatim (test/unit/event-kinds.test.ts). */
export function webhookTriggerSql(): string {
  const sends = WEBHOOK_TYPES.flatMap((type) =>
    [false, true].flatMap((once) => {
      const kinds = kindsWhere((m) => m.webhook === type && (m.webhookOnce ?? false) === once);
      const first = ` AND NOT EXISTS (
    SELECT 1 FROM integration_events e WHERE e.connection_id = NEW.connection_id AND e.kind = NEW.kind AND e.id <> NEW.id
  )`;
      return kinds.length
        ? [`  IF NEW.kind IN (${sqlList(kinds)})${once ? first : ""} THEN\n    types := types || '${type}'::text;\n  END IF;`]
        : [];
    }),
  );
  return `-- Generated from src/domain/event-kinds.ts (webhookTriggerSql): the webhooks an event kind sends, and
-- connection.recovered after a recovery that follows an error.
CREATE OR REPLACE FUNCTION "integration_events_webhooks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_ok integration_events%ROWTYPE;
  types text[] := '{}';
BEGIN
${sends.join("\n")}
  IF NEW.kind IN (${sqlList(RECOVERY_KINDS)}) THEN
    -- The previous recovery (each probe is a LIMIT 1 on the (connection, kind, occurred_at) index).
    SELECT * INTO last_ok FROM (
      ${RECOVERY_KINDS.map(probeLastOk).join("\n      UNION ALL\n      ")}
    ) p ORDER BY p.id DESC LIMIT 1;
    IF EXISTS (
      SELECT 1 FROM integration_events e
      WHERE e.connection_id = NEW.connection_id AND e.level = 'error' AND e.id <> NEW.id
        AND e.kind IN (${sqlList(ERROR_KINDS)})
        AND (last_ok.id IS NULL OR (e.occurred_at >= last_ok.occurred_at AND e.id > last_ok.id))
    ) THEN
      types := types || 'connection.recovered'::text;
    END IF;
  END IF;
  INSERT INTO webhook_deliveries (event_id, connection_id, type) SELECT NEW.id, NEW.connection_id, t FROM unnest(types) t;
  RETURN NULL;
END $$;
`;
}
