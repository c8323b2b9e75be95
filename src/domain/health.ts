import { z } from "zod";
import type { AccountRef } from "./account.js";
import { DAY_MS } from "./calendar.js";
import type { Connection } from "../generated/prisma/client.js";
import { EventKind, type ConnectionStatus } from "../generated/prisma/enums.js";
import { runProgress, type Checkpoint } from "./checkpoint.js";
import { errorOf, warningOf, type ErrorKind, type WarningKind } from "./event-kinds.js";

// One health object per connection, from the row and its latest relevant events, so the API, the producer and the support page agree.

export const HEALTH_STATES = ["verifying", "backfilling", "healthy", "throttled", "action_required", "failing", "disconnected"] as const;
type HealthState = (typeof HEALTH_STATES)[number];

// A health state comes from one stored status (failing and throttled from two): a state filter narrows by status in SQL first.
export const STATUSES_OF: Record<HealthState, ConnectionStatus[]> = {
  verifying: ["pending"],
  backfilling: ["connected"],
  healthy: ["connected"],
  throttled: ["pending", "connected"],
  failing: ["pending", "connected"],
  action_required: ["credential_error"],
  disconnected: ["disconnected"],
};

type HealthEvent = { at: Date; kind: ErrorKind; httpStatus: number | null };

export type HealthInput = Pick<Connection, "status" | "createdAt" | "updatedAt" | "verifiedAt" | "lastSyncedAt"> & {
  checkpoint: Checkpoint | null;
  /** pacedPerMinute: the token's learned pace (older events have none). */
  lastRateLimited: { at: Date; retryAfterSeconds: number | null; pacedPerMinute?: number | null } | null;
  lastError: HealthEvent | null;
  /** The latest recovery or token replacement: an error older than it is not current. */
  lastSuccessAt: Date | null;
  /** The first recovery after the latest error (or ever, without one). */
  recoveredAt: Date | null;
  /** The first and latest failure at warn since the row, its last error and last success changed (a page written ends it). */
  retrying?: { since: Date; last: HealthEvent & { attempt: number | null; maxAttempts: number | null; nextAt: Date | null } } | null;
  /** Per optional read, its latest warning that nothing ended since. */
  warnings?: { at: Date; kind: WarningKind; endpoint: string; httpStatus: number | null }[];
  duplicateOf?: string | null;
  account?: AccountRef | null;
};

const instant = z.iso.datetime();

export const healthSchema = z
  .object({
    state: z.enum(HEALTH_STATES),
    since: instant.describe("when the connection entered this state, as far as the database can tell"),
    message: z.string().describe("one plain sentence for support staff"),
    action: z.string().nullable().describe("what to do next, or null"),
    actionBy: z.enum(["customer", "operator"]).nullable().describe("who does the action: the customer (a new token) or the operator"),
    lastError: z
      .object({ at: instant, kind: z.enum(EventKind), httpStatus: z.number().int().nullable(), message: z.string() })
      .nullable()
      .describe("the error behind the state, only while it is current"),
    warnings: z
      .array(z.object({ kind: z.enum(EventKind), since: instant, message: z.string(), action: z.string().nullable() }))
      .describe("optional parts that are degraded while usage still syncs (e.g. deployments unread); empty when none"),
    attempts: z.number().int().positive().optional().describe("failing while retried: the attempt that failed last"),
    progress: z.number().min(0).max(1).optional().describe("backfilling (and throttled during it): share of the first backfill read"),
    until: instant
      .optional()
      .describe("throttled: when the delayed request is retried; failing while retried: when the next attempt is due"),
    pacedPerMinute: z
      .number()
      .positive()
      .optional()
      .describe("throttled: requests/min this token is paced at, learned from Replicate's 429s (absent before any is recorded)"),
  })
  .describe("one health object per connection: the same on the API, the producer and the support page");

export type Health = z.output<typeof healthSchema>;

/** "2026-03-10 12:00 UTC": the one time format of messages. */
export const utc = (d: Date) => `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;

const DISCONNECTED = "Disconnected: the token was deleted and syncing stopped; usage already synced stays in the workspace.";

export function connectionHealth(c: HealthInput, now: Date): Health {
  const retry = c.retrying ?? null;
  const currentError = retry?.last ?? (c.lastError && (!c.lastSuccessAt || c.lastError.at > c.lastSuccessAt) ? c.lastError : null);
  const meaning = currentError && errorOf(currentError.kind);
  const lastError = currentError && {
    at: currentError.at.toISOString(),
    kind: currentError.kind,
    httpStatus: currentError.httpStatus,
    message: meaning!.text,
  };
  // Optional parts degrade a sync; without one running they say nothing.
  const warnings = (c.status === "connected" ? (c.warnings ?? []) : []).map((w) => ({
    kind: w.kind,
    since: w.at.toISOString(),
    message: warningOf(w.kind).message(w),
    action: null,
  }));
  const context = { verified: c.verifiedAt !== null, duplicateOf: c.duplicateOf ?? null, account: c.account ?? null };
  const at = (state: HealthState, since: Date, message: string, extra: Partial<Health> = {}): Health => ({
    state,
    since: since.toISOString(),
    message,
    action: null,
    actionBy: null,
    lastError,
    warnings,
    ...extra,
  });
  // The first backfill is the run before any run finished; its progress is what support asks about.
  const backfill = c.status === "connected" && !c.lastSyncedAt ? (c.checkpoint ? runProgress(c.checkpoint) : 0) : undefined;
  const progress = backfill === undefined ? {} : { progress: backfill };
  const done = backfill === undefined ? "" : `${Math.round(backfill * 100)} % done`;

  if (c.status === "disconnected") return at("disconnected", c.updatedAt, DISCONNECTED);
  if (c.status === "credential_error") {
    // Every pausing kind is an error kind recorded before the pause, so one is current here.
    const paused = meaning ?? errorOf("credential_invalid");
    const action: Partial<Health> = paused.action ? { action: paused.action(context), actionBy: paused.actionBy ?? "customer" } : {};
    return at("action_required", currentError?.at ?? c.updatedAt, paused.message(context), action);
  }
  const until = c.lastRateLimited && new Date(c.lastRateLimited.at.getTime() + (c.lastRateLimited.retryAfterSeconds ?? 0) * 1000);
  if (c.lastRateLimited && until && until > now) {
    const paced = c.lastRateLimited.pacedPerMinute ?? undefined;
    const pace = paced === undefined ? "" : ` is paced at ${paced} requests/min and`;
    const extra = { until: until.toISOString(), ...progress, ...(paced === undefined ? {} : { pacedPerMinute: paced }) };
    const text = `Replicate is rate-limiting this account; syncing${pace} continues at ${utc(until)}.`;
    return at("throttled", c.lastRateLimited.at, done ? `${text} The first backfill is ${done}.` : text, extra);
  }
  if (retry) {
    const { attempt, maxAttempts, nextAt } = retry.last;
    const step = c.status === "pending" ? "Checking the token" : "A step of the sync run";
    const tries = attempt === null ? "" : ` on attempt ${attempt}${maxAttempts === null ? "" : ` of ${maxAttempts}`}`;
    const next = nextAt ? `the next attempt is due by ${utc(nextAt)}` : "it is being retried";
    return at("failing", retry.since, `${step} failed${tries} (see the current error); ${next}.`, {
      ...(attempt === null ? {} : { attempts: attempt }),
      ...(nextAt ? { until: nextAt.toISOString() } : {}),
    });
  }
  if (meaning) return at("failing", currentError.at, meaning.message(context));
  if (c.status === "pending") return at("verifying", c.updatedAt, "Checking the token with Replicate.");
  if (backfill !== undefined) {
    const days = c.checkpoint && Math.round((Date.parse(c.checkpoint.windowEnd) - Date.parse(c.checkpoint.windowStart)) / DAY_MS);
    const read = days ? `the last ${days} days of` : "past";
    return at("backfilling", c.verifiedAt ?? c.createdAt, `Reading ${read} usage for the first time: ${done}.`, progress);
  }
  const last = utc(c.lastSyncedAt ?? c.createdAt);
  return at("healthy", c.recoveredAt ?? c.verifiedAt ?? c.createdAt, `Syncing normally; the last completed run started at ${last}.`);
}
