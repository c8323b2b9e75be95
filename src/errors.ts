// One class per way a provider call or an input can fail; the job layer maps them to retry, delay, pause or give up
// (src/lifecycle/failures.ts). Messages never carry a token or a response body that might hold user content.

export abstract class AppError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The base of every error class below: its code. */
const coded = <C extends string>(code: C) =>
  class extends AppError {
    readonly code = code;
  };

/** 401/403: names the rejected token by fingerprint, because it may have been replaced since the request. */
const rejectedToken = <C extends string, S extends number>(code: C, httpStatus: S) =>
  class extends coded(code) {
    readonly httpStatus = httpStatus;
    constructor(
      message: string,
      readonly tokenFingerprint?: string,
    ) {
      super(message);
    }
  };

/** 401: the token is invalid or revoked. Retrying cannot help. */
export class CredentialError extends rejectedToken("credential_invalid", 401) {}
/** 403: the token is valid but may not read this resource. */
export class ScopeError extends rejectedToken("scope_denied", 403) {}

/** 429: wait retryAfterSeconds, then try again; only this connection waits. */
export class RateLimitError extends coded("rate_limited") {
  readonly httpStatus = 429;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    readonly retryAfterSource: "header" | "body" | "default" | "local_cap",
    /** The token's learned pace when this was raised, so the event log and health can state it. */
    readonly pacedPerMinute?: number,
  ) {
    super(message);
  }
}

/** An HTTP exchange that failed with the status it answered (none: no answer). */
const httpExchange = <C extends string>(code: C) =>
  class extends coded(code) {
    constructor(
      message: string,
      readonly httpStatus?: number | null,
      options?: ErrorOptions,
    ) {
      super(message, options);
    }
  };

/** 5xx, timeout or network failure that outlasted the client's own retries. */
export class TransientProviderError extends httpExchange("provider_error") {}
/** The provider answered with something that is not the documented shape. */
export class MalformedResponseError extends httpExchange("malformed_response") {}

/** A pagination link pointing away from the configured API origin: never followed. */
export class ForeignLinkError extends coded("foreign_link_refused") {}

/** Bad input from a caller of the producer or HTTP API. */
export class ValidationError extends coded("validation_failed") {
  constructor(
    message: string,
    readonly issues: string[] = [],
  ) {
    super(message);
  }
}

/** A stored token that cannot be decrypted (its key is not configured, or the ciphertext was altered). */
export class VaultError extends coded("token_unreadable") {
  constructor(
    readonly reason: "malformed" | "unknown_key" | "authentication_failed",
    message: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends coded("not_found") {}
/** A dependency the request needs (Redis, for the job queue) does not answer; nothing was changed. */
export class ServiceUnavailableError extends coded("unavailable") {}
/** A read that ran past its time limit and was stopped by the database; the same request would again. */
export class QueryTimeoutError extends coded("query_timeout") {}
export class ConflictError extends coded("conflict") {}

/** The backend's webhook endpoint did not answer 2xx (or not at all); the webhook queue retries it. */
export class WebhookDeliveryError extends httpExchange("webhook_failed") {}
