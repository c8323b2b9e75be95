import type { AppContext, JobOutcome } from "../context.js";
import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
  VaultError,
} from "../errors.js";
import type { PauseKind } from "../domain/event-kinds.js";
import { moduleLogger } from "../logger.js";
import { markCredentialError, storedToken } from "../repositories/connections.js";
import { recordEvent } from "../repositories/events.js";
import { abandonRun } from "../repositories/runs.js";
import { tokenFingerprint } from "../vault.js";

// What a failed job means, in two halves: `classify` is pure (error + attempt → decision); `handleFailure` performs its effects
// (events, pausing, ending a run) and says what the job should do, which the queue adapter turns into BullMQ calls.

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
  | { action: "delay"; delayMs: number; event: "rate_limited" | null }
  /** A verification that failed for the `attempt`th time, retried after `delayMs`. */
  | { action: "delay"; delayMs: number; event: "provider_error"; attempt: number }
  /** Stop syncing until the token is replaced (or readable again); `rejectedToken` is the fingerprint the provider refused. */
  | { action: "pause"; event: PauseKind; rejectedToken?: string }
  | { action: "stop_run"; event: "foreign_link_refused" }
  /** BullMQ runs it again within `withinMs` (its exponential backoff; jitter only shortens the wait). */
  | { action: "retry"; providerError: boolean; withinMs: number; maxAttempts: number }
  | { action: "give_up"; providerError: boolean };

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
    return providerError
      ? { action: "delay", delayMs, event: "provider_error", attempt: attempt.attemptsStarted }
      : { action: "delay", delayMs, event: null };
  }
  if (attempt.attemptsMade + 1 >= attempt.maxAttempts) return { action: "give_up", providerError };
  return { action: "retry", providerError, withinMs: attempt.backoffMs * 2 ** attempt.attemptsMade, maxAttempts: attempt.maxAttempts };
}

/** A failed attempt as the workers report it (a delay counts in attemptsStarted, not in attemptsMade). */
type FailedJob = Omit<Attempt, "queue" | "backoffMs"> & { data: { connectionId: string }; jobId: string | null };

const seconds = (ms: number) => Math.ceil(ms / 1000);

/** Classifies a failed job, performs the decision's effects and says what the job does next. */
export async function handleFailure(ctx: AppContext, queue: Attempt["queue"], err: unknown, job: FailedJob): Promise<JobOutcome> {
  const decision = classify(err, { queue, ...job, backoffMs: ctx.config.jobs.backoffMs });
  const { db } = ctx;
  const { connectionId } = job.data;
  const base = { connectionId, jobId: job.jobId };
  const log = moduleLogger("failures", base);
  const message = err instanceof Error ? err.message : String(err);
  const httpStatus = (err as { httpStatus?: number }).httpStatus ?? null;

  switch (decision.action) {
    case "delay": {
      if (decision.event === "rate_limited" && err instanceof RateLimitError) {
        ctx.metrics.rateLimited.inc({ source: err.retryAfterSource });
        await recordEvent(db, {
          ...base,
          kind: "rate_limited",
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
          detail: { attempt: decision.attempt },
        });
      }
      log.warn("job delayed", { delayMs: decision.delayMs, error: err });
      return { then: "delay", delayMs: decision.delayMs };
    }

    case "pause": {
      let ciphertext: string | undefined;
      if (decision.event !== "token_unreadable") {
        const stored = await storedToken(db, ctx.vault, connectionId);
        if (!stored) return { then: "complete", result: { outcome: "disconnected" } };
        if (decision.rejectedToken && tokenFingerprint(stored.token) !== decision.rejectedToken) {
          log.info("a replaced token was rejected; retrying with the stored one", { event: decision.event });
          return { then: "rethrow" };
        }
        ciphertext = stored.ciphertext;
      }
      const paused = `${message}. Syncing is paused until the token is replaced.`;
      const event = { ...base, kind: decision.event, message: paused, httpStatus };
      // Another job of the run (a second window) may have met the same token first.
      if (!(await markCredentialError(db, connectionId, event, ciphertext))) {
        return { then: "complete", result: { outcome: "already_paused" } };
      }
      await ctx.queues.removeScheduler(connectionId);
      log.warn("connection paused", { event: decision.event });
      // The customer's action, not a fault of the service: the job completes with that outcome.
      return { then: "complete", result: { outcome: "paused" } };
    }

    case "stop_run": {
      await recordEvent(db, { ...base, kind: "foreign_link_refused", message });
      // The run the link was met in is the connection's current one: its window is still open, so it cannot have ended.
      await abandonRun(db, connectionId);
      await recordEvent(db, { ...base, kind: "sync_failed", message: "sync run stopped: unsafe pagination link" });
      return { then: "stop", reason: message };
    }

    case "retry":
    case "give_up": {
      const retry = decision.action === "retry" ? decision : null;
      const attempt = job.attemptsMade + 1;
      if (decision.providerError) {
        await recordEvent(db, {
          ...base,
          kind: "provider_error",
          level: retry ? "warn" : "error",
          message: retry
            ? `${message}; will retry (attempt ${attempt} of ${retry.maxAttempts} failed; next within ${seconds(retry.withinMs)}s)`
            : `${message}; giving up after ${attempt} attempts`,
          httpStatus,
          retryAfterSeconds: retry && seconds(retry.withinMs),
          detail: { attempt, maxAttempts: retry?.maxAttempts, code: (err as { code?: string }).code },
        });
      }
      if (!retry) {
        await recordEvent(db, {
          ...base,
          kind: "sync_failed",
          message: "sync run failed; the next scheduled run resumes from the last saved page",
        });
      }
      log.warn("job attempt failed", { error: err, attempt, lastAttempt: !retry });
      return { then: "rethrow" };
    }
  }
}
