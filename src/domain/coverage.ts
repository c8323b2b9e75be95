import { z } from "zod";
import { addDays, dayStart, daysBetween, localDay } from "./calendar.js";
import { syncWindowStart } from "./checkpoint.js";

// What of a range each connection has read ("no usage" is not "not synced yet"), and which days no later sync can change.

export interface CoverageSource {
  connectionId: string;
  /** A disconnected connection is never read again. */
  disconnected: boolean;
  lastSyncedAt: Date | null;
  highWaterMark: Date | null;
  /** created_at of the oldest ledger row not yet terminal. */
  oldestUnfinished: Date | null;
  /** created_after of the first run that finished: where the data starts once the backfill is done. */
  firstWindowStart: Date | null;
  /** The run in progress: its window and the oldest prediction it has read. */
  run: { windowStart: Date; windowEnd: Date; oldestRead: Date | null } | null;
}

const day = z.iso.date();

export const coverageSchema = z.object({
  connectionId: z.uuid(),
  from: day.nullable().describe("first local day of the range that has been read"),
  to: day.nullable().describe("last local day of the range that has been read"),
  complete: z.boolean(),
  lastSyncedAt: z.iso.datetime().nullable(),
  finalThrough: day
    .nullable()
    .describe("the last day from `from` on such that it and every read day before it are final; null when `from` is not final"),
  utcOnly: z
    .array(z.object({ from: day, to: day }))
    .describe(
      "days (ranges) whose usage is partly whole UTC days kept from before quarter hours (their predictions were pruned): counted under their UTC date, so not exact in this zone",
    ),
  days: z
    .array(
      z.object({
        date: day,
        final: z
          .boolean()
          .describe("no later sync can change this day: all its predictions were terminal and it is past any sync's window"),
        refreshedAt: z.iso.datetime().nullable().describe("when a page holding the day's predictions was last written; null without usage"),
      }),
    )
    .describe("each read day, from `from` to `to` (JSON only: the CSV's X-Coverage header leaves it out)"),
});
export type Coverage = z.output<typeof coverageSchema>;
/** `complete`: every requested day up to the last finished sync has been read. */
export type CoverageSpan = Omit<Coverage, "finalThrough" | "utcOnly" | "days">;

/** The time span read so far: [start, end). */
function readSpan(s: CoverageSource): { start: Date; end: Date } | null {
  const run = s.run?.oldestRead ? { start: s.run.oldestRead, end: s.run.windowEnd } : null;
  if (s.lastSyncedAt && s.highWaterMark && s.firstWindowStart) {
    // A later run that has read back into the finished span extends it to that run's end (pages are newest first).
    const end = run && run.start <= s.highWaterMark ? run.end : s.highWaterMark;
    return { start: s.firstWindowStart, end };
  }
  return run;
}

/** The local days of `range` (in `timeZone`, UTC by default) the connection has read. */
export function coverageOf(s: CoverageSource, range: { from: string; to: string; timeZone?: string }): CoverageSpan {
  const zone = range.timeZone ?? "UTC";
  const span = readSpan(s);
  const lastSyncedAt = s.lastSyncedAt?.toISOString() ?? null;
  if (!span) return { connectionId: s.connectionId, from: null, to: null, complete: false, lastSyncedAt };
  const from = [range.from, localDay(span.start, zone)].sort()[1]!;
  const to = [range.to, localDay(new Date(span.end.getTime() - 1), zone)].sort()[0]!;
  const complete = s.lastSyncedAt !== null && span.start <= dayStart(range.from, zone);
  const read = from <= to ? { from, to } : { from: null, to: null };
  return { connectionId: s.connectionId, ...read, complete, lastSyncedAt };
}

const daysOf = (c: Pick<CoverageSpan, "from" | "to">): string[] => (c.from && c.to ? daysBetween(c.from, c.to) : []);

/**
 * Days a zero row may fill: per connection with `byConnection`, else (under "") the days read by every connection that may still read
 * (it may find usage on a day it has not read). A disconnected one reads no more and holds back no day; with none left, any one's count.
 */
export function readDays(coverage: CoverageSpan[], byConnection: boolean, disconnected: ReadonlySet<string>): Map<string, string[]> {
  if (byConnection) return new Map(coverage.map((c) => [c.connectionId, daysOf(c)]));
  const reading = coverage.filter((c) => !disconnected.has(c.connectionId));
  if (reading.length === 0) return new Map([["", [...new Set(coverage.flatMap(daysOf))].sort()]]);
  // Each connection has read one run of days: what they all have read is where those runs overlap.
  const from = reading.map((c) => c.from ?? "").sort();
  const to = reading.map((c) => c.to ?? "").sort()[0];
  return new Map([["", from.at(-1) && to ? daysOf({ from: from.at(-1)!, to }) : []]]);
}

/** Per connection id and local day with usage: unfinished when read, last refreshed (ISO), partly a whole UTC day (not exact). */
export type UsageDayFacts = Map<string, Map<string, { unfinished: boolean; refreshedAt: string | null; utcOnly: boolean }>>;

/**
 * The earliest created_at any later run can read (ms; Infinity: none will): the next run's window start from what is stored now, or
 * the current run's. The high-water mark and time only move forward, so this holds while LOOKBACK_HOURS and BACKFILL_DAYS are not raised.
 */
function readAgainFrom(s: CoverageSource, settings: { backfillDays: number; lookbackHours: number }, now: Date): number {
  if (s.disconnected) return Infinity;
  const next = syncWindowStart({ now, highWaterMark: s.highWaterMark, oldestUnfinished: s.oldestUnfinished, ...settings }).getTime();
  return Math.min(next, s.run?.windowStart.getTime() ?? Infinity);
}

// Settled before no day: no later run reads the connection.
const NEVER = "\uffff";

/**
 * Which local days are final: a connection's day no later run can read again (it ends by `readAgainFrom`), with everything counted on
 * it terminal when read. A usage row spans connections and days (all in scope when not grouped by them) and is final when each is.
 */
export class Finality {
  /** Per connection: days before this one end before any later run's window (a later day never does). */
  private readonly settledBefore = new Map<string, string>();
  /** Per connection: every day of the range is final (it ends before the settled day, and nothing in it is unfinished). */
  private readonly wholeRange = new Map<string, boolean>();
  /** For rows over every connection in scope: the earliest settled day, the days any has unfinished, and whether each range is final. */
  private readonly earliestSettled: string;
  private readonly openDays = new Set<string>();
  private readonly everyRange: boolean;

  constructor(
    sources: CoverageSource[],
    private readonly facts: UsageDayFacts,
    range: { from: string; to: string; timeZone: string },
    settings: { backfillDays: number; lookbackHours: number },
    now: Date,
  ) {
    for (const s of sources) {
      const from = readAgainFrom(s, settings, now);
      // A day ends by `from` exactly when it is before the local day `from` falls on.
      const before = from === Infinity ? NEVER : localDay(new Date(from), range.timeZone);
      let inRange = false;
      for (const [date, f] of facts.get(s.connectionId) ?? []) {
        if (f.unfinished) this.openDays.add(date);
        inRange ||= f.unfinished && date >= range.from && date <= range.to;
      }
      this.settledBefore.set(s.connectionId, before);
      this.wholeRange.set(s.connectionId, range.from > range.to || (range.to < before && !inRange));
    }
    this.earliestSettled = [...this.settledBefore.values()].sort()[0] ?? NEVER;
    this.everyRange = [...this.wholeRange.values()].every(Boolean);
  }

  day(connectionId: string, date: string): boolean {
    const before = this.settledBefore.get(connectionId);
    return before !== undefined && date < before && !this.facts.get(connectionId)?.get(date)?.unfinished;
  }

  /** A row's finality: `connectionId`/`date` when grouped by them, else every connection / day in scope. */
  row(connectionId?: string | null, date?: string | null): boolean {
    if (connectionId) return date ? this.day(connectionId, date) : (this.wholeRange.get(connectionId) ?? false);
    return date ? date < this.earliestSettled && !this.openDays.has(date) : this.everyRange;
  }

  /** A connection's coverage with each read day's finality and refresh time. */
  describe(span: CoverageSpan): Coverage {
    const facts = this.facts.get(span.connectionId);
    const days = daysOf(span).map((date) => ({
      date,
      final: this.day(span.connectionId, date),
      refreshedAt: facts?.get(date)?.refreshedAt ?? null,
    }));
    const firstOpen = days.findIndex((d) => !d.final);
    const finalThrough = firstOpen === 0 ? null : (days[firstOpen === -1 ? days.length - 1 : firstOpen - 1]?.date ?? null);
    const utcOnly: { from: string; to: string }[] = [];
    for (const date of [...(facts?.keys() ?? [])].filter((d) => facts!.get(d)!.utcOnly).sort()) {
      const last = utcOnly.at(-1);
      if (last && addDays(last.to, 1) === date) last.to = date;
      else utcOnly.push({ from: date, to: date });
    }
    return { ...span, finalThrough, utcOnly, days };
  }
}
