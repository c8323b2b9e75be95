import { DelayedError, UnrecoverableError, type Job } from "bullmq";
import type { AppContext } from "../context.js";
import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
} from "../errors.js";
import { moduleLogger } from "../logger.js";
import { markCredentialError, storedToken } from "../repositories/connections.js";
import { tokenFingerprint } from "../vault.js";
import { recordEvent } from "../repositories/events.js";
import { abandonRun } from "../sync/run.js";
import { removeSyncScheduler } from "./schedulers.js";

/**
 * The one place that turns a failure into a job outcome and an event support staff can read:
 * 429 → delay only this job (not an attempt); 401/403 → pause the connection, no retry;
 * foreign pagination link → give up this run; 5xx/timeouts/bad responses → retry with backoff.
 */
export async function handleJobFailure(
  ctx: AppContext,
  job: Job<{ connectionId: string; runId?: string }>,
  token: string | undefined,
  err: unknown,
): Promise<never> {
  const { connectionId, runId } = job.data;
  const base = { connectionId, jobId: job.id ?? null };
  const log = moduleLogger(`job:${job.queueName}`, { jobId: job.id, connectionId });
  const isSync = job.queueName === "sync";

  if (err instanceof RateLimitError) {
    ctx.metrics.rateLimited.inc({ source: err.retryAfterSource });
    await recordEvent(ctx.db, {
      ...base,
      kind: "rate_limited",
      level: "warn",
      message: `${err.message}; retrying in ${err.retryAfterSeconds}s`,
      httpStatus: err.retryAfterSource === "local_cap" ? null : 429,
      retryAfterSeconds: err.retryAfterSeconds,
      detail: { retryAfterSource: err.retryAfterSource },
    });
    log.warn("rate limited; job delayed", { retryAfterSeconds: err.retryAfterSeconds });
    await job.moveToDelayed(Date.now() + err.retryAfterSeconds * 1000, token);
    throw new DelayedError();
  }

  if (err instanceof CredentialError || err instanceof ScopeError) {
    const stored = await storedToken(ctx.db, ctx.vault, connectionId);
    if (!stored) throw new UnrecoverableError("the connection has no token any more (disconnected)");
    if (err.tokenFingerprint && tokenFingerprint(stored.token) !== err.tokenFingerprint) {
      // The token was replaced after this request was made: try again with the new one.
      log.info("a replaced token was rejected; retrying with the stored one", { code: err.code });
      throw new Error("the rejected token has been replaced since the request");
    }
    const { ciphertext } = stored;
    // The event first: whoever sees the status change can already read why.
    await recordEvent(ctx.db, {
      ...base,
      kind: err instanceof CredentialError ? "credential_invalid" : "scope_denied",
      level: "error",
      message: `${err.message}. Syncing is paused until the token is replaced.`,
      httpStatus: err.httpStatus,
    });
    await markCredentialError(ctx.db, connectionId, ciphertext);
    await removeSyncScheduler(ctx.queues, connectionId);
    log.warn("credential rejected; connection paused", { code: err.code });
    throw new UnrecoverableError(err.message);
  }

  if (err instanceof ForeignLinkError) {
    await recordEvent(ctx.db, { ...base, kind: "foreign_link_refused", level: "error", message: err.message });
    if (runId) await abandonRun(ctx.db, connectionId, runId);
    if (isSync)
      await recordEvent(ctx.db, { ...base, kind: "sync_failed", level: "error", message: "sync run stopped: unsafe pagination link" });
    throw new UnrecoverableError(err.message);
  }

  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  if (err instanceof TransientProviderError || err instanceof MalformedResponseError) {
    await recordEvent(ctx.db, {
      ...base,
      kind: "provider_error",
      level: lastAttempt ? "error" : "warn",
      message: lastAttempt ? `${err.message}; giving up after ${job.attemptsMade + 1} attempts` : `${err.message}; will retry`,
      httpStatus: err.httpStatus ?? null,
      detail: { attempt: job.attemptsMade + 1, code: err.code },
    });
  }
  if (lastAttempt && isSync) {
    await recordEvent(ctx.db, {
      ...base,
      kind: "sync_failed",
      level: "error",
      message: "sync run failed; the next scheduled run resumes from the last saved page",
    });
  }
  log.warn("job attempt failed", { error: err, attempt: job.attemptsMade + 1, lastAttempt });
  throw err;
}
