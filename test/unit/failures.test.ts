import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
  VaultError,
} from "../../src/errors.js";
import { VERIFY_MAX_DELAY_MS, classify, type Attempt } from "../../src/lifecycle/failures.js";

const sync = (attemptsMade: number): Attempt => ({
  queue: "sync",
  attemptsMade,
  maxAttempts: 3,
  attemptsStarted: attemptsMade + 1,
  backoffMs: 100,
});
const verify = (attemptsStarted: number): Attempt => ({
  queue: "verify",
  attemptsMade: 0,
  maxAttempts: 3,
  attemptsStarted,
  backoffMs: 100,
});

test.each([
  [
    "429 delays by its Retry-After, not an attempt",
    new RateLimitError("throttled", 7, "header"),
    sync(2),
    { action: "delay", delayMs: 7000, event: "rate_limited" },
  ],
  ["local cap delays too", new RateLimitError("cap", 1, "local_cap"), verify(1), { action: "delay", delayMs: 1000, event: "rate_limited" }],
  [
    "401 pauses, naming the refused token",
    new CredentialError("revoked", "fp1"),
    sync(0),
    { action: "pause", event: "credential_invalid", rejectedToken: "fp1" },
  ],
  ["403 pauses", new ScopeError("scope", "fp2"), verify(1), { action: "pause", event: "scope_denied", rejectedToken: "fp2" }],
  [
    "an unreadable token pauses with its own event",
    new VaultError("unknown_key", "no key"),
    sync(0),
    { action: "pause", event: "token_unreadable" },
  ],
  [
    "a foreign pagination link stops the run",
    new ForeignLinkError("elsewhere"),
    sync(0),
    { action: "stop_run", event: "foreign_link_refused" },
  ],
  [
    "5xx retries while attempts remain, within BullMQ's exponential backoff",
    new TransientProviderError("503", 503),
    sync(0),
    { action: "retry", providerError: true, withinMs: 100, maxAttempts: 3 },
  ],
  ["5xx on the last attempt gives up", new TransientProviderError("503", 503), sync(2), { action: "give_up", providerError: true }],
  [
    "a malformed page is a provider error",
    new MalformedResponseError("bad json", 200),
    sync(1),
    { action: "retry", providerError: true, withinMs: 200, maxAttempts: 3 },
  ],
  [
    "an unknown error retries without a provider event",
    new Error("database hiccup"),
    sync(0),
    { action: "retry", providerError: false, withinMs: 100, maxAttempts: 3 },
  ],
  ["an unknown error gives up on the last attempt", new Error("bug"), sync(2), { action: "give_up", providerError: false }],
  [
    "verify: 5xx backs off and never gives up",
    new TransientProviderError("503", 503),
    verify(3),
    { action: "delay", delayMs: 400, event: "provider_error", attempt: 3 },
  ],
  ["verify: an unknown error backs off silently", new Error("db down"), verify(1), { action: "delay", delayMs: 100, event: null }],
  [
    "verify: the backoff is bounded",
    new TransientProviderError("503", 503),
    verify(40),
    { action: "delay", delayMs: VERIFY_MAX_DELAY_MS, event: "provider_error", attempt: 40 },
  ],
])("%s", (_name, err, attempt, decision) => {
  expect(classify(err, attempt)).toEqual(decision);
});
