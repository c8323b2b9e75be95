import type { AccountRef } from "./account.js";
import type { ConnectionStatus, EventKind } from "../generated/prisma/enums.js";
import { runProgress, type Checkpoint } from "./checkpoint.js";

/**
 * One health object per connection, computed from what the database says (the connection row and
 * its latest relevant events), so the API, the producer and the support page tell the same story.
 * Pure: the repository reads the inputs (src/repositories/connection-views.ts).
 */

export const HEALTH_STATES = ["verifying", "backfilling", "healthy", "throttled", "action_required", "failing", "disconnected"] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

export interface HealthEvent {
  at: Date;
  kind: EventKind;
  httpStatus: number | null;
}

export interface HealthInput {
  status: ConnectionStatus;
  createdAt: Date;
  updatedAt: Date;
  verifiedAt: Date | null;
  lastSyncedAt: Date | null;
  checkpoint: Checkpoint | null;
  /** The latest rate_limited event; pacedPerMinute is the token's learned pace it recorded (older events have none). */
  lastRateLimited: { at: Date; retryAfterSeconds: number | null; pacedPerMinute?: number | null } | null;
  /** The latest error-level event. */
  lastError: HealthEvent | null;
  /** The latest verified, sync_completed or token_replaced event: an error older than it is not current. */
  lastSuccessAt: Date | null;
  /** The first verified or sync_completed event after the latest error (or ever, without one). */
  recoveredAt: Date | null;
  /** The connection that already counts this Replicate account in the workspace, when this one is its duplicate. */
  duplicateOf?: string | null;
  /** The Replicate account the connection syncs, once verified. */
  account?: AccountRef | null;
}

export interface Health {
  state: HealthState;
  /** When the connection entered this state (as far as the database can tell). */
  since: string;
  /** One plain sentence for support staff. */
  message: string;
  /** What to do next, or null when nothing is needed. */
  action: string | null;
  /** Who does the action: the customer (a new token) or the operator (the service's configuration). */
  actionBy: "customer" | "operator" | null;
  /** The error behind the state, only while it is current (cleared by the next success). */
  lastError: { at: string; kind: EventKind; httpStatus: number | null; message: string } | null;
  /** backfilling (and throttled during the first backfill): share of the first backfill window read, 0–1. */
  progress?: number;
  /** throttled: when the delayed request is retried. */
  until?: string;
  /** throttled: requests per minute this token is paced at, as learned from Replicate's 429s. */
  pacedPerMinute?: number;
}

const ERROR_TEXT: Partial<Record<EventKind, string>> = {
  credential_invalid: "Replicate rejected the token.",
  scope_denied: "The token may not read this account's predictions.",
  duplicate_account: "This Replicate account is already connected in this workspace.",
  account_changed: "The new token belongs to another Replicate account than the one this connection syncs.",
  token_unreadable: "The stored token cannot be decrypted with the configured keys.",
  provider_error: "Replicate's API kept failing.",
  foreign_link_refused: "Replicate sent a pagination link to another host; it was not followed.",
  sync_failed: "The sync run failed after its retries.",
};

const FAILING_MESSAGE: Partial<Record<EventKind, string>> = {
  provider_error: "Replicate's API kept failing, so the connection could not be checked or synced; it is tried again on the next run.",
  foreign_link_refused: "Replicate sent a pagination link to another host, so the run was stopped; the next scheduled run starts again.",
  sync_failed: "Replicate's API kept failing, so the last sync run stopped; the next scheduled run resumes where it stopped.",
};

const NEW_TOKEN = "Ask the customer to create a new API token in the Replicate organization that owns the usage and paste it again.";

/** "2026-03-10 12:00 UTC": the one time format of messages. */
export const utc = (d: Date) => `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;

export function connectionHealth(c: HealthInput, now: Date): Health {
  const currentError = c.lastError && (!c.lastSuccessAt || c.lastError.at > c.lastSuccessAt) ? c.lastError : null;
  const lastError = currentError && {
    at: currentError.at.toISOString(),
    kind: currentError.kind,
    httpStatus: currentError.httpStatus,
    message: ERROR_TEXT[currentError.kind] ?? "The last attempt failed.",
  };
  const at = (state: HealthState, since: Date, message: string, action: string | null = null, extra: Partial<Health> = {}): Health => ({
    state,
    since: since.toISOString(),
    message,
    action,
    actionBy: action === null ? null : "customer",
    lastError,
    ...extra,
  });
  // The first backfill is the run before any run finished; its progress is what support asks about.
  const backfill = c.status === "connected" && !c.lastSyncedAt ? (c.checkpoint ? runProgress(c.checkpoint) : 0) : undefined;
  const backfillDays = c.checkpoint && Math.round((Date.parse(c.checkpoint.windowEnd) - Date.parse(c.checkpoint.windowStart)) / 86_400_000);
  const backfillText = backfill === undefined ? "" : ` The first backfill is ${Math.round(backfill * 100)} % done.`;

  if (c.status === "disconnected") {
    return at(
      "disconnected",
      c.updatedAt,
      "Disconnected: the token was deleted and syncing stopped; usage already synced stays in the workspace.",
    );
  }
  if (c.status === "credential_error") {
    const since = currentError?.at ?? c.updatedAt;
    if (c.duplicateOf) {
      return at(
        "action_required",
        since,
        `This Replicate account is already connected in this workspace as connection ${c.duplicateOf}, so this connection does not sync (its usage would be counted twice).`,
        `Nothing is needed if connection ${c.duplicateOf} is the one the customer wants. To use this one instead, disconnect ${c.duplicateOf}, then paste the token here again.`,
      );
    }
    if (currentError?.kind === "account_changed" && c.account) {
      const synced = `${c.account.type} "${c.account.username}"`;
      return at(
        "action_required",
        since,
        `The token pasted last belongs to another Replicate account than the ${synced} this connection syncs, so it was not used and syncing is paused.`,
        `Ask the customer for a token of the Replicate ${synced} and to paste it here. To sync the other account, create a new connection for it.`,
      );
    }
    if (currentError?.kind === "token_unreadable") {
      return at(
        "action_required",
        since,
        "The stored token cannot be decrypted with the configured keys (the key it was encrypted with is not in TOKEN_ENCRYPTION_KEYS), so syncing is paused; the token itself may still be valid.",
        "Restore the missing key in TOKEN_ENCRYPTION_KEYS and restart the service (every token encrypted with it fails alike); this connection then resumes when its token is pasted again.",
        { actionBy: "operator" },
      );
    }
    if (currentError?.kind === "scope_denied") {
      return at(
        "action_required",
        since,
        "The token works but may not read this account's predictions, so syncing is paused.",
        "Ask the customer for a token created in the Replicate organization that owns the usage, and to paste it again.",
      );
    }
    if (!c.verifiedAt) {
      return at(
        "action_required",
        since,
        "Replicate rejected the token the first time it was checked, so nothing has been synced.",
        "Ask the customer to copy the token again from replicate.com/account/api-tokens and paste it whole.",
      );
    }
    return at(
      "action_required",
      since,
      "Replicate no longer accepts the stored token (revoked or expired), so syncing is paused.",
      NEW_TOKEN,
    );
  }
  const until = c.lastRateLimited && new Date(c.lastRateLimited.at.getTime() + (c.lastRateLimited.retryAfterSeconds ?? 0) * 1000);
  if (c.lastRateLimited && until && until > now) {
    const paced = c.lastRateLimited.pacedPerMinute ?? undefined;
    const pace = paced === undefined ? "" : ` is paced at ${paced} requests/min and`;
    return at(
      "throttled",
      c.lastRateLimited.at,
      `Replicate is rate-limiting this account; syncing${pace} continues at ${utc(until)}.${backfillText}`,
      null,
      {
        until: until.toISOString(),
        ...(backfill === undefined ? {} : { progress: backfill }),
        ...(paced === undefined ? {} : { pacedPerMinute: paced }),
      },
    );
  }
  if (currentError) return at("failing", currentError.at, FAILING_MESSAGE[currentError.kind] ?? "The last sync attempt failed.");
  if (c.status === "pending") return at("verifying", c.updatedAt, "Checking the token with Replicate.");
  if (backfill !== undefined) {
    const days = backfillDays ? `the last ${backfillDays} days of` : "past";
    return at(
      "backfilling",
      c.verifiedAt ?? c.createdAt,
      `Reading ${days} usage for the first time: ${Math.round(backfill * 100)} % done.`,
      null,
      {
        progress: backfill,
      },
    );
  }
  return at(
    "healthy",
    c.recoveredAt ?? c.verifiedAt ?? c.createdAt,
    `Syncing normally; the last completed run started at ${utc(c.lastSyncedAt ?? c.createdAt)}.`,
  );
}
