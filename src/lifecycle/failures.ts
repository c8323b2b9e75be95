import type { Db } from "../db/client.js";
import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
  VaultError,
} from "../errors.js";
import { EVENT_KINDS, type PauseKind } from "../domain/event-kinds.js";
import { moduleLogger } from "../logger.js";
import { markCredentialError, storedToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { abandonRun } from "../repositories/runs.js";
import { tokenFingerprint, type TokenVault } from "../vault.js";

// What a failed job means, in two halves: `classify` is pure (error + attempt → decision, unit
// tested per error class); `applyFailure` performs the decision's effects (events, pausing, ending a
// run) and says what the job should do. The queue adapter turns that into BullMQ calls.

export interface Attempt {
  queue: "verify" | "sync";
  /** Attempts that counted so far (a delay is not an attempt), and how many may count. */
  attemptsMade: number;
  maxAttempts: number;
  /** Every start, delays included: drives the verification backoff. */
  attemptsStarted: number;
  backoffMs: number;
}

export type FailureDecision =
  /** Wait, then run again; not an attempt. `event` null: nothing for support to read. */
  | { action: "delay"; delayMs: number; event: "rate_limited" | "provider_error" | null }
  /** Stop syncing until the token is replaced (or readable again); `rejectedToken` is the fingerprint the provider refused. */
  | { action: "pause"; event: PauseKind; rejectedToken?: string }
  | { action: "stop_run"; event: "foreign_link_refused" }
  | { action: "retry" | "give_up"; providerError: boolean };

/** Verification never gives up on a transient failure: it backs off up to this, then keeps trying. */
export const VERIFY_MAX_DELAY_MS = 10 * 60_000;

export function classify(err: unknown, attempt: Attempt): FailureDecision {
  if (err instanceof RateLimitError) return { action: "delay", delayMs: err.retryAfterSeconds * 1000, event: "rate_limited" };
  if (err instanceof CredentialError || err instanceof ScopeError) {
    return { action: "pause", event: err.code, rejectedToken: err.tokenFingerprint };
  }
  if (err instanceof VaultError) return { action: "pause", event: "token_unreadable" };
  if (err instanceof ForeignLinkError) return { action: "stop_run", event: "foreign_link_refused" };
  const providerError = err instanceof TransientProviderError || err instanceof MalformedResponseError;
  if (attempt.queue === "verify") {
    // A connection must never be left pending because Replicate was briefly down.
    const delayMs = Math.min(VERIFY_MAX_DELAY_MS, attempt.backoffMs * 2 ** Math.max(0, attempt.attemptsStarted - 1));
    return { action: "delay", delayMs, event: providerError ? "provider_error" : null };
  }
  return { action: attempt.attemptsMade + 1 >= attempt.maxAttempts ? "give_up" : "retry", providerError };
}

export interface FailureDeps {
  db: Db;
  vault: TokenVault;
  removeScheduler(connectionId: string): Promise<void>;
  onRateLimited(source: string): void;
}

export interface FailedJob {
  connectionId: string;
  runId?: string;
  jobId: string | null;
  attemptsMade: number;
}

export type JobOutcome =
  | { then: "delay"; delayMs: number }
  | { then: "complete"; result: { outcome: string } }
  | { then: "stop"; reason: string }
  | { then: "rethrow" };

const seconds = (ms: number) => Math.ceil(ms / 1000);

export async function applyFailure(deps: FailureDeps, decision: FailureDecision, err: unknown, job: FailedJob): Promise<JobOutcome> {
  const { db } = deps;
  const base = { connectionId: job.connectionId, jobId: job.jobId };
  const log = moduleLogger("failures", base);
  const message = err instanceof Error ? err.message : String(err);
  const httpStatus = (err as { httpStatus?: number }).httpStatus ?? null;

  switch (decision.action) {
    case "delay": {
      if (decision.event === "rate_limited" && err instanceof RateLimitError) {
        deps.onRateLimited(err.retryAfterSource);
        await recordEvent(db, {
          ...base,
          kind: "rate_limited",
          level: "warn",
          message: `${message}; retrying in ${err.retryAfterSeconds}s`,
          httpStatus: err.retryAfterSource === "local_cap" ? null : 429,
          retryAfterSeconds: err.retryAfterSeconds,
          detail: {
            retryAfterSource: err.retryAfterSource,
            ...(err.pacedPerMinute === undefined ? {} : { pacedPerMinute: err.pacedPerMinute }),
          },
        });
      } else if (decision.event === "provider_error") {
        await recordEvent(db, {
          ...base,
          kind: "provider_error",
          level: "warn",
          message: `${message}; verification retries in ${seconds(decision.delayMs)}s`,
          httpStatus,
          retryAfterSeconds: seconds(decision.delayMs),
        });
      }
      log.warn("job delayed", { delayMs: decision.delayMs, error: err });
      return { then: "delay", delayMs: decision.delayMs };
    }

    case "pause": {
      let ciphertext: string | undefined;
      if (decision.event !== "token_unreadable") {
        const stored = await storedToken(db, deps.vault, job.connectionId);
        if (!stored) return { then: "complete", result: { outcome: "disconnected" } };
        if (decision.rejectedToken && tokenFingerprint(stored.token) !== decision.rejectedToken) {
          log.info("a replaced token was rejected; retrying with the stored one", { event: decision.event });
          return { then: "rethrow" };
        }
        ciphertext = stored.ciphertext;
      }
      // The event first: whoever sees the status change can already read why.
      await recordEvent(db, {
        ...base,
        kind: decision.event,
        level: EVENT_KINDS[decision.event].level,
        message: `${message}. Syncing is paused until the token is replaced.`,
        httpStatus,
      });
      await markCredentialError(db, job.connectionId, ciphertext);
      await deps.removeScheduler(job.connectionId);
      log.warn("connection paused", { event: decision.event });
      // The customer's action, not a fault of the service: the job completes with that outcome.
      return { then: "complete", result: { outcome: "paused" } };
    }

    case "stop_run":
      await recordEvent(db, { ...base, kind: "foreign_link_refused", level: "error", message });
      if (job.runId) await abandonRun(db, job.connectionId, job.runId);
      await recordEvent(db, { ...base, kind: "sync_failed", level: "error", message: "sync run stopped: unsafe pagination link" });
      return { then: "stop", reason: message };

    case "retry":
    case "give_up": {
      const lastAttempt = decision.action === "give_up";
      const attempt = job.attemptsMade + 1;
      if (decision.providerError) {
        await recordEvent(db, {
          ...base,
          kind: "provider_error",
          level: lastAttempt ? "error" : "warn",
          message: lastAttempt ? `${message}; giving up after ${attempt} attempts` : `${message}; will retry`,
          httpStatus,
          detail: { attempt, code: (err as { code?: string }).code },
        });
      }
      if (lastAttempt) {
        await recordEvent(db, {
          ...base,
          kind: "sync_failed",
          level: "error",
          message: "sync run failed; the next scheduled run resumes from the last saved page",
        });
      }
      log.warn("job attempt failed", { error: err, attempt, lastAttempt });
      return { then: "rethrow" };
    }
  }
}
