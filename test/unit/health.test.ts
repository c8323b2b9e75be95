import { connectionHealth, utc, type HealthInput } from "../../src/domain/health.js";
import {
  advanceWindow,
  newCheckpoint,
  readSince,
  runProgress,
  splitWindow,
  windowId,
  type Checkpoint,
} from "../../src/domain/checkpoint.js";
import { coverageOf } from "../../src/domain/coverage.js";

const now = new Date("2026-03-10T12:00:00.000Z");
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);
const created = minutesAgo(120);
const backfill = newCheckpoint(
  { now: minutesAgo(100), highWaterMark: null, oldestUnfinished: null, backfillDays: 90, lookbackHours: 24 },
  "run-1",
);
const DAY = 86_400_000;
const firstWindow = Object.values(backfill.windows)[0]!;
/** The backfill's one window, read back to `oldest`. */
const readBackTo = (oldest: string): Checkpoint => ({
  ...backfill,
  windows: { [windowId(firstWindow)]: { ...firstWindow, pagesDone: 3, oldest } },
});
const base: HealthInput = {
  status: "connected",
  createdAt: created,
  updatedAt: created,
  verifiedAt: minutesAgo(100),
  lastSyncedAt: minutesAgo(100),
  checkpoint: null,
  lastRateLimited: null,
  lastError: null,
  lastSuccessAt: minutesAgo(90),
  recoveredAt: minutesAgo(100),
};
const at = (m: number) => minutesAgo(m);
// Protocol detail support should not have to read.
const NOISE = /HTTP|\(\d{3}\)|Unauthorized|pages?\b/;

// The seven customers of issue 12, as the database describes them.
const customers: { name: string; input: HealthInput; expected: Record<string, unknown> }[] = [
  { name: "healthy", input: base, expected: { state: "healthy", since: at(100).toISOString(), action: null, lastError: null } },
  {
    name: "second connection of a workspace",
    input: { ...base, createdAt: at(30), verifiedAt: at(29), lastSyncedAt: at(29), recoveredAt: at(28), lastSuccessAt: at(28) },
    expected: { state: "healthy", since: at(28).toISOString(), lastError: null },
  },
  {
    name: "revoked (401 after syncing)",
    input: {
      ...base,
      status: "credential_error",
      lastError: { at: at(10), kind: "credential_invalid", httpStatus: 401 },
      recoveredAt: null,
    },
    expected: {
      state: "action_required",
      since: at(10).toISOString(),
      action: expect.stringMatching(/new API token in the Replicate organization that owns the usage/),
      lastError: { at: at(10).toISOString(), kind: "credential_invalid", httpStatus: 401, message: "Replicate rejected the token." },
    },
  },
  {
    name: "throttled mid-backfill",
    input: {
      ...base,
      lastSyncedAt: null,
      lastSuccessAt: at(100),
      checkpoint: readBackTo(new Date(Date.parse(backfill.windowEnd) - 36 * DAY).toISOString()),
      lastRateLimited: { at: at(1), retryAfterSeconds: 900 },
    },
    expected: { state: "throttled", since: at(1).toISOString(), until: new Date(at(1).getTime() + 900_000).toISOString(), progress: 0.4 },
  },
  {
    name: "empty account (first run read one empty page)",
    input: { ...base, lastSyncedAt: at(99), recoveredAt: at(100) },
    expected: { state: "healthy", lastError: null },
  },
  {
    name: "mistyped token (401 at verify)",
    input: {
      ...base,
      status: "credential_error",
      verifiedAt: null,
      lastSyncedAt: null,
      lastSuccessAt: null,
      recoveredAt: null,
      lastError: { at: at(119), kind: "credential_invalid", httpStatus: 401 },
    },
    expected: {
      state: "action_required",
      action: expect.stringMatching(/copy the token again/),
      lastError: expect.objectContaining({ kind: "credential_invalid" }),
    },
  },
  {
    name: "token of another account pasted",
    input: {
      ...base,
      status: "credential_error",
      account: { type: "organization", username: "acme-ml" },
      lastError: { at: at(3), kind: "account_changed", httpStatus: null },
      lastSuccessAt: at(4),
    },
    expected: {
      state: "action_required",
      since: at(3).toISOString(),
      message: expect.stringMatching(/another Replicate account than the organization "acme-ml"/),
      action: expect.stringMatching(/token of the Replicate organization "acme-ml".*create a new connection/),
      lastError: expect.objectContaining({ kind: "account_changed" }),
    },
  },
  {
    name: "revoked then recovered",
    input: { ...base, lastError: { at: at(50), kind: "credential_invalid", httpStatus: 401 }, lastSuccessAt: at(5), recoveredAt: at(40) },
    expected: { state: "healthy", since: at(40).toISOString(), lastError: null, action: null },
  },
];

test.each(customers)("$name", ({ input, expected }) => {
  const health = connectionHealth(input, now);
  expect(health).toMatchObject(expected);
  expect(health.message).not.toMatch(NOISE);
  expect(health.message).toMatch(/^[A-Z].*\.$/);
});

test.each([
  {
    name: "new connection",
    input: { ...base, status: "pending" as const, verifiedAt: null, lastSyncedAt: null, lastSuccessAt: null },
    state: "verifying",
  },
  {
    name: "token replaced after a revoke: the old error is not current",
    input: {
      ...base,
      status: "pending" as const,
      lastError: { at: at(20), kind: "credential_invalid" as const, httpStatus: 401 },
      lastSuccessAt: at(2),
    },
    state: "verifying",
  },
  { name: "first backfill running", input: { ...base, lastSyncedAt: null, checkpoint: backfill }, state: "backfilling" },
  { name: "first backfill not yet started", input: { ...base, lastSyncedAt: null }, state: "backfilling" },
  {
    name: "a run failed after its retries",
    input: { ...base, lastError: { at: at(3), kind: "sync_failed" as const, httpStatus: null } },
    state: "failing",
  },
  { name: "a 429 whose wait is over", input: { ...base, lastRateLimited: { at: at(30), retryAfterSeconds: 60 } }, state: "healthy" },
  {
    name: "403",
    input: { ...base, status: "credential_error" as const, lastError: { at: at(3), kind: "scope_denied" as const, httpStatus: 403 } },
    state: "action_required",
  },
  { name: "disconnected", input: { ...base, status: "disconnected" as const }, state: "disconnected" },
])("$name → $state", ({ input, state }) => {
  const health = connectionHealth(input, now);
  expect(health.state).toBe(state);
  expect(health.message).not.toMatch(NOISE);
  if (state === "backfilling") expect(health.progress).toBe(0);
  if (state === "failing") expect(health.lastError).not.toBeNull();
});

test("throttled after a 429 lowered the token's pace: the health says the learned rate, as a field and in its message", () => {
  const input = { ...base, lastRateLimited: { at: at(1), retryAfterSeconds: 120, pacedPerMinute: 6 } };
  const health = connectionHealth(input, now);
  expect(health).toMatchObject({ state: "throttled", pacedPerMinute: 6 });
  expect(health.message).toBe(
    `Replicate is rate-limiting this account; syncing is paced at 6 requests/min and continues at ${utc(new Date(at(1).getTime() + 120_000))}.`,
  );
  // An event recorded before the pace was stored: no field, and the message says only when it continues.
  const older = connectionHealth({ ...input, lastRateLimited: { at: at(1), retryAfterSeconds: 120, pacedPerMinute: null } }, now);
  expect(older).not.toHaveProperty("pacedPerMinute");
  expect(older.message).toMatch(/^Replicate is rate-limiting this account; syncing continues at /);
});

test("a window remembers the oldest created_at it read, which is what progress measures from", () => {
  const page = (w: typeof firstWindow, ...iso: string[]) => advanceWindow(w, { next: "n", createdAts: iso.map((d) => new Date(d)) });
  const one = page(firstWindow, "2026-03-09T10:00:00.000Z", "2026-03-08T10:00:00.000Z");
  expect(one.oldest).toBe("2026-03-08T10:00:00.000Z");
  expect(page(one, "2026-03-07T01:00:00.000Z").oldest).toBe("2026-03-07T01:00:00.000Z");
  expect(advanceWindow(one, { next: null, createdAts: [] }).oldest).toBe("2026-03-08T10:00:00.000Z");
});

test("backfill progress is the share of the run's window read, whichever windows read it", () => {
  const end = Date.parse(backfill.windowEnd);
  expect(runProgress(backfill)).toBe(0);
  expect(runProgress(readBackTo(new Date(end - 45 * DAY).toISOString()))).toBe(0.5);
  expect(runProgress(readBackTo("2020-01-01T00:00:00.000Z"))).toBe(1);
  expect(runProgress({ ...backfill, done: true })).toBe(1);
  // Split after 9 days read in 90 pages: three new windows below; the bottom one is finished.
  const busy = { ...firstWindow, pagesDone: 90, oldest: new Date(end - 9 * DAY).toISOString() };
  const [top, ...rest] = splitWindow(busy, 1, 4);
  expect(rest).toHaveLength(3);
  const bottom = rest.find((w) => w.start === firstWindow.start)!;
  const windows = Object.fromEntries([top!, ...rest].map((w) => [windowId(w), w.start === bottom.start ? { ...w, done: true } : w]));
  const split: Checkpoint = { ...backfill, windows };
  // 9 days at the top + the bottom quarter of the 81 days left (20.25 days) = 29.25 of 90.
  expect(runProgress(split)).toBe(0.33);
  // Coverage counts only what is read without a gap back from the end.
  expect(readSince(split)?.toISOString()).toBe(busy.oldest);
});

describe("coverage", () => {
  const src = {
    connectionId: "c1",
    disconnected: false,
    lastSyncedAt: null,
    highWaterMark: null,
    oldestUnfinished: null,
    firstWindowStart: null,
    run: null,
  };
  const range = { from: "2026-03-01", to: "2026-03-10" };

  test("nothing read yet: no span, not complete", () => {
    expect(coverageOf(src, range)).toEqual({ connectionId: "c1", from: null, to: null, complete: false, lastSyncedAt: null });
  });
  test("a backfill stuck part way: the days read back from the run's end, not complete", () => {
    const run = {
      windowStart: new Date("2026-02-08T12:00:00Z"),
      windowEnd: new Date("2026-03-10T12:00:00Z"),
      oldestRead: new Date("2026-03-07T05:00:00Z"),
    };
    expect(coverageOf({ ...src, run }, range)).toMatchObject({ from: "2026-03-07", to: "2026-03-10", complete: false });
  });
  test("a finished backfill covers from its window start; a range before it was never read", () => {
    const done = {
      ...src,
      lastSyncedAt: new Date("2026-03-10T11:00:00Z"),
      highWaterMark: new Date("2026-03-10T11:00:00Z"),
      firstWindowStart: new Date("2026-02-20T11:00:00Z"),
    };
    expect(coverageOf(done, range)).toMatchObject({
      from: "2026-03-01",
      to: "2026-03-10",
      complete: true,
      lastSyncedAt: "2026-03-10T11:00:00.000Z",
    });
    expect(coverageOf(done, { from: "2026-01-01", to: "2026-01-31" })).toMatchObject({ from: null, to: null, complete: false });
    expect(coverageOf(done, { from: "2026-02-20", to: "2026-02-25" })).toMatchObject({ from: "2026-02-20", complete: false });
  });
});

test("a stored token the configured keys cannot decrypt is the operator's to fix, not the customer's", () => {
  const health = connectionHealth(
    { ...base, status: "credential_error", lastError: { at: at(5), kind: "token_unreadable", httpStatus: null }, recoveredAt: at(100) },
    now,
  );
  expect(health).toMatchObject({
    state: "action_required",
    since: at(5).toISOString(),
    lastError: { kind: "token_unreadable", message: expect.stringMatching(/cannot be decrypted/) },
  });
  expect(health.message).toMatch(/cannot be decrypted with the configured keys/);
  expect(health.message).not.toMatch(/no longer accepts/);
  expect(health).toMatchObject({ actionBy: "operator", action: expect.stringMatching(/TOKEN_ENCRYPTION_KEYS/) });
});

describe("while a verification or run is retried, health says so from the first failure on", () => {
  const failure = (attempt: number, maxAttempts: number | null, nextInSeconds: number) => ({
    since: at(6),
    last: {
      at: at(1),
      kind: "provider_error" as const,
      httpStatus: 500,
      attempt,
      maxAttempts,
      nextAt: new Date(at(1).getTime() + nextInSeconds * 1000),
    },
  });

  test("verification: failing with the error, the attempt and when the next one is due", () => {
    const retrying = failure(3, null, 160);
    const input = {
      ...base,
      status: "pending" as const,
      verifiedAt: null,
      lastSyncedAt: null,
      lastSuccessAt: at(7),
      recoveredAt: null,
      retrying,
    };
    const health = connectionHealth(input, now);
    expect(health).toMatchObject({
      state: "failing",
      since: at(6).toISOString(),
      attempts: 3,
      until: retrying.last.nextAt.toISOString(),
      lastError: {
        at: at(1).toISOString(),
        kind: "provider_error",
        httpStatus: 500,
        message: expect.stringMatching(/^Replicate's API failed/),
      },
    });
    expect(health.message).toBe(
      `Checking the token failed on attempt 3 (see the current error); the next attempt is due by ${utc(retrying.last.nextAt)}.`,
    );
    expect(health.message).not.toMatch(NOISE);
  });

  test("a run: the attempt of how many, and the latest the next one runs", () => {
    const retrying = failure(1, 3, 2);
    const health = connectionHealth({ ...base, retrying }, now);
    expect(health).toMatchObject({ state: "failing", attempts: 1, until: retrying.last.nextAt.toISOString() });
    expect(health.message).toMatch(
      /^A step of the sync run failed on attempt 1 of 3 \(see the current error\); the next attempt is due by /,
    );
  });
});

describe("warnings: optional parts that are degraded while usage still syncs", () => {
  const deployments404 = { at: at(30), kind: "enrichment_failed" as const, endpoint: "/v1/deployments", httpStatus: 404 };
  const message =
    "Deployments could not be read from Replicate (HTTP 404); usage still syncs; the cost of deployment usage is shown as unpriced until the read succeeds; it is tried again at every run.";

  test("none: an empty list", () => {
    expect(connectionHealth(base, now).warnings).toEqual([]);
  });
  test.each([
    { name: "healthy", input: { ...base, warnings: [deployments404] }, state: "healthy" },
    { name: "first backfill", input: { ...base, lastSyncedAt: null, warnings: [deployments404] }, state: "backfilling" },
  ])("a failed deployments read keeps the state ($name) and names what is missing", ({ input, state }) => {
    const health = connectionHealth(input, now);
    expect(health).toMatchObject({
      state,
      lastError: null,
      warnings: [{ kind: "enrichment_failed", since: at(30).toISOString(), message, action: null }],
    });
  });
});
