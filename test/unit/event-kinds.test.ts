import { readdirSync, readFileSync } from "node:fs";
import {
  ERROR_KINDS,
  EVENT_KINDS,
  RECOVERY_KINDS,
  errorOf,
  webhookTriggerSql,
  type ErrorKind,
  type KindMeaning,
} from "../../src/domain/event-kinds.js";
import { connectionHealth, type HealthInput } from "../../src/domain/health.js";
import { EventKind } from "../../src/generated/prisma/enums.js";
import { CredentialError, ScopeError, VaultError } from "../../src/errors.js";
import { classify } from "../../src/lifecycle/failures.js";
import { eventParams } from "../../src/repositories/events.js";

// Every list that says something about event kinds is the table's: what pauses, what is an error,
// what health says, what the webhook trigger sends, what support can filter by.

const kinds = Object.keys(EVENT_KINDS) as EventKind[];
const meaningOf = (kind: EventKind): KindMeaning => EVENT_KINDS[kind];
const where = (test: (k: EventKind) => boolean) => kinds.filter(test);

test("the table has one row per kind of the EventKind enum", () => {
  expect([...kinds].sort()).toEqual(Object.values(EventKind).sort());
});

test("pause kinds: every pause failures.ts decides is one of the table's action_required errors", () => {
  const attempt = { queue: "sync" as const, attemptsMade: 0, maxAttempts: 3, attemptsStarted: 1, backoffMs: 100 };
  for (const err of [new CredentialError("401", "fp"), new ScopeError("403", "fp"), new VaultError("unknown_key", "no key")]) {
    const decision = classify(err, attempt);
    if (decision.action !== "pause") throw new Error(`${err.name} does not pause`);
    expect([decision.event, errorOf(decision.event).state]).toEqual([decision.event, "action_required"]);
  }
});

test("error kinds: the table's errors, each with the text health shows for it", () => {
  expect(ERROR_KINDS).toEqual(where((k) => meaningOf(k).error !== undefined));
  expect(ERROR_KINDS).toContain("token_unreadable");
});

describe("health says what the table says for each current error", () => {
  const now = new Date("2026-03-10T12:00:00.000Z");
  const before = new Date("2026-03-10T11:00:00.000Z");
  const failedAt = new Date("2026-03-10T11:55:00.000Z");
  const account = { type: "organization" as const, username: "acme" };
  const context = { verified: true, duplicateOf: "c-holder", account };
  test.each(ERROR_KINDS)("%s", (kind: ErrorKind) => {
    const meaning = errorOf(kind);
    const input: HealthInput = {
      status: meaning.state === "action_required" ? "credential_error" : "connected",
      createdAt: before,
      updatedAt: before,
      verifiedAt: before,
      lastSyncedAt: before,
      checkpoint: null,
      lastRateLimited: null,
      lastError: { at: failedAt, kind, httpStatus: null },
      lastSuccessAt: before,
      recoveredAt: before,
      duplicateOf: context.duplicateOf,
      account,
    };
    expect(connectionHealth(input, now)).toMatchObject({
      state: meaning.state,
      since: failedAt.toISOString(),
      message: meaning.message(context),
      action: meaning.action?.(context) ?? null,
      actionBy: meaning.action ? (meaning.actionBy ?? "customer") : null,
      lastError: { kind, message: meaning.text },
    });
  });
});

describe("the webhook trigger", () => {
  const dir = "prisma/migrations";
  const newest = readdirSync(dir)
    .filter((m) => /^\d{14}_/.test(m))
    .sort()
    .reverse()
    .map((m) => readFileSync(`${dir}/${m}/migration.sql`, "utf8"))
    .find((sql) => sql.includes('FUNCTION "integration_events_webhooks"()'))!;

  test("the newest migration that defines it carries the SQL derived from the table", () => {
    expect(newest).toContain(webhookTriggerSql());
  });

  test("its kind lists send each kind's webhook, and connection.recovered after an error", () => {
    const list = (s: string) => [...s.matchAll(/'([a-z_]+)'/g)].map((m) => m[1] as EventKind);
    const sends = new Map<EventKind, string[]>();
    for (const [, ks, type] of newest.matchAll(
      /IF NEW\.kind IN \(([^)]*)\)(?: AND NOT EXISTS \([^)]*\))? THEN\s+types := types \|\| '([a-z_.]+)'/g,
    )) {
      for (const k of list(ks!)) sends.set(k, [...(sends.get(k) ?? []), type!]);
    }
    expect(Object.fromEntries(sends)).toEqual(
      Object.fromEntries(where((k) => meaningOf(k).webhook !== undefined).map((k) => [k, [meaningOf(k).webhook]])),
    );
    const recovery = /IF NEW\.kind IN \(([^)]*)\) THEN\s+-- The previous recovery/.exec(newest)?.[1];
    expect(list(recovery!)).toEqual(RECOVERY_KINDS);
    expect(list(/AND e\.kind IN \(([^)]*)\)/.exec(newest)![1]!)).toEqual(ERROR_KINDS);
  });
});

test("the support page's event-kind filter offers every kind, in the table's order", () => {
  const source = readFileSync(new URL("../../src/api/ui/app.js", import.meta.url), "utf8");
  const list = /const EVENT_KINDS = \[([^\]]*)\]/.exec(source)?.[1];
  expect([...list!.matchAll(/"([a-z_]+)"/g)].map((m) => m[1])).toEqual(kinds);
});

test("the README's event-kind table lists every kind at its level", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const rows = new Map([...readme.matchAll(/^\| `([a-z_]+)` +\| ([a-z/]+) +\|/gm)].map((m) => [m[1], m[2]]));
  for (const kind of kinds) {
    const { level, retried } = meaningOf(kind);
    expect([kind, rows.get(kind)]).toEqual([kind, retried ? `warn/${level}` : level]);
  }
});

test("an event is recorded at its kind's level unless the caller gives one (a retried kind while retried)", () => {
  for (const kind of kinds) expect([kind, eventParams({ kind, message: "m" })[1]]).toEqual([kind, meaningOf(kind).level]);
  expect(eventParams({ kind: "provider_error", level: "warn", message: "m" })[1]).toBe("warn");
});
