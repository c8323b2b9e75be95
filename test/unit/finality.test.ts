import fc from "fast-check";
import { addDays, daysBetween } from "../../src/domain/calendar.js";
import { Finality, readDays, type CoverageSource, type CoverageSpan, type UsageDayFacts } from "../../src/domain/coverage.js";

// Rows over every connection or every day in scope are answered from precomputed facts, not by
// visiting each connection × day: these compare them with that definition on random scopes.

const FROM = "2026-03-01";
const TO = "2026-03-08";
const now = new Date("2026-03-10T12:00:00.000Z");
const settings = { backfillDays: 90, lookbackHours: 24 };
const day = fc.integer({ min: -2, max: 10 }).map((n) => addDays(FROM, n));

/** A connection whose next run reads from `readFrom` (null: disconnected, never read again). */
const source = (connectionId: string, readFrom: string | null): CoverageSource => ({
  connectionId,
  disconnected: readFrom === null,
  lastSyncedAt: now,
  highWaterMark: readFrom ? new Date(`${readFrom}T12:00:00.000Z`) : now,
  oldestUnfinished: null,
  firstWindowStart: new Date("2026-01-01T00:00:00.000Z"),
  run: null,
});

const scope = fc.array(
  fc.record({
    readFrom: fc.option(day, { nil: null }),
    facts: fc.array(fc.record({ date: day, unfinished: fc.boolean() }), { maxLength: 6 }),
  }),
  { maxLength: 4 },
);

test("a row over every connection or every day is final exactly when each of its connection-days is", () => {
  fc.assert(
    fc.property(scope, (connections) => {
      const ids = connections.map((_, i) => `c${i}`);
      const facts: UsageDayFacts = new Map(
        connections.map((c, i) => [ids[i]!, new Map(c.facts.map((f) => [f.date, { ...f, refreshedAt: null, utcOnly: false }]))]),
      );
      const sources = connections.map((c, i) => source(ids[i]!, c.readFrom));
      const finality = new Finality(sources, facts, { from: FROM, to: TO, timeZone: "UTC" }, settings, now);
      const every = (cs: string[], ds: string[]) => cs.every((c) => ds.every((d) => finality.day(c, d)));
      for (const d of daysBetween(FROM, TO)) expect(finality.row(null, d)).toBe(every(ids, [d]));
      for (const c of ids) expect(finality.row(c, null)).toBe(every([c], daysBetween(FROM, TO)));
      expect(finality.row(null, null)).toBe(every(ids, daysBetween(FROM, TO)));
    }),
  );
});

test("the days every connection still reading has read (if none is: the days any has read) are the days in each one's span", () => {
  const span = fc.option(fc.tuple(day, day), { nil: null });
  fc.assert(
    fc.property(fc.array(fc.record({ span, disconnected: fc.boolean() }), { maxLength: 4 }), (connections) => {
      const coverage: CoverageSpan[] = connections.map(({ span: s }, i) => ({
        connectionId: `c${i}`,
        from: s ? [...s].sort()[0]! : null,
        to: s ? [...s].sort()[1]! : null,
        complete: true,
        lastSyncedAt: null,
      }));
      const disconnected = new Set(coverage.filter((_, i) => connections[i]!.disconnected).map((c) => c.connectionId));
      const reading = coverage.filter((c) => !disconnected.has(c.connectionId));
      const read = (c: CoverageSpan, d: string) => c.from !== null && c.from <= d && d <= c.to!;
      const expected = daysBetween(addDays(FROM, -2), addDays(FROM, 10)).filter((d) =>
        reading.length ? reading.every((c) => read(c, d)) : coverage.some((c) => read(c, d)),
      );
      expect(readDays(coverage, false, disconnected)).toEqual(new Map([["", expected]]));
    }),
  );
});
