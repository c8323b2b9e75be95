import { utcDay } from "./calendar.js";

/** What coverage needs besides the public view. */
export interface CoverageSource {
  connectionId: string;
  lastSyncedAt: Date | null;
  highWaterMark: Date | null;
  /** created_after of the first run that finished: where the data starts once the backfill is done. */
  firstWindowStart: Date | null;
  /** The run in progress: its window end and the oldest prediction it has read. */
  run: { windowEnd: Date; oldestRead: Date | null } | null;
}

/**
 * How much of a requested date range the database has actually read, per connection, so a dashboard
 * can tell "no usage" from "not synced yet". Pure: the inputs come from coverageSources().
 */
export interface Coverage {
  connectionId: string;
  /** First and last UTC day of the range that has been read (the edge days may be partly read); null when none. */
  from: string | null;
  to: string | null;
  /** Every requested day up to the last finished sync has been read. Days after it fill in on the next runs. */
  complete: boolean;
  lastSyncedAt: string | null;
}

const DAY = 86_400_000;

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

export function coverageOf(s: CoverageSource, range: { from: string; to: string }): Coverage {
  const span = readSpan(s);
  const lastSyncedAt = s.lastSyncedAt?.toISOString() ?? null;
  if (!span) return { connectionId: s.connectionId, from: null, to: null, complete: false, lastSyncedAt };
  const from = [range.from, utcDay(span.start)].sort()[1]!;
  const to = [range.to, utcDay(new Date(span.end.getTime() - 1))].sort()[0]!;
  const finished = s.lastSyncedAt !== null;
  const complete = finished && span.start.getTime() <= Date.parse(`${range.from}T00:00:00Z`);
  return from <= to
    ? { connectionId: s.connectionId, from, to, complete, lastSyncedAt }
    : { connectionId: s.connectionId, from: null, to: null, complete, lastSyncedAt };
}

/** The UTC days from `from` to `to`, inclusive (empty when either is null). */
export function daysOf(c: Pick<Coverage, "from" | "to">): string[] {
  if (!c.from || !c.to) return [];
  const days: string[] = [];
  for (let t = Date.parse(`${c.from}T00:00:00Z`); t <= Date.parse(`${c.to}T00:00:00Z`); t += DAY) days.push(utcDay(new Date(t)));
  return days;
}

/**
 * The days a zero row may be filled in for: per connection (keyed by its id) with `byConnection`, else
 * under "" the days every connection in scope has read (a day one of them has not read is unknown, not zero).
 */
export function readDays(coverage: Coverage[], byConnection: boolean): Map<string, string[]> {
  if (byConnection) return new Map(coverage.map((c) => [c.connectionId, daysOf(c)]));
  const sets = coverage.map((c) => new Set(daysOf(c)));
  const shared = coverage.length ? daysOf(coverage[0]!).filter((d) => sets.every((s) => s.has(d))) : [];
  return new Map([["", shared]]);
}
