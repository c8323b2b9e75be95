import { z } from "zod";

// Postgres takes years 4713 BC to 294276 AD; usage starts long after 1970, so anything earlier is a mistake.
const EPOCH_DAY = "1970-01-01";
/** A calendar day (YYYY-MM-DD) from 1970 on. */
export const isoDay = z.iso.date().refine((d) => d >= EPOCH_DAY && d <= "9999-12-31", "must be a day from 1970-01-01 to 9999-12-31");
/** An ISO 8601 instant with a zone, from 1970 on. */
export const isoInstant = z.iso
  .datetime({ offset: true })
  .refine((t) => Date.parse(t) >= 0 && t.slice(0, 4) <= "9999", "must be a time from 1970-01-01T00:00:00Z on");

export const utcDay = (d: Date): string => d.toISOString().slice(0, 10);

export const DAY_MS = 86_400_000;

/** The calendar day `n` days after `day` (calendar arithmetic: the same in every zone). */
export const addDays = (day: string, n: number): string => utcDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS));

// A usage answer asks for the same range once per connection in scope (up to thousands): listed once.
let listed = { from: "", to: "", days: [] as string[] };

/** Inclusive; a new array each time. */
export function daysBetween(from: string, to: string): string[] {
  if (listed.from !== from || listed.to !== to) {
    const days: string[] = [];
    // By instant, not by string: the day after 9999-12-31 is "+010000-01-01", which sorts before it.
    for (let t = Date.parse(from), end = Date.parse(to); t <= end; t += DAY_MS) days.push(utcDay(new Date(t)));
    listed = { from, to, days };
  }
  return listed.days.slice();
}

// A zone name as IANA spells them (Area/Location, UTC, EST5EDT, Etc/GMT+5). Offsets ("+05:30") and
// POSIX rules ("UTC+3") are refused: Postgres reads a POSIX rule's sign the other way round.
const ZONE_SHAPE = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/;
const formatters = new Map<string, Intl.DateTimeFormat>();

const WALL_CLOCK = {
  hourCycle: "h23",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
} as const;

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) formatters.set(timeZone, (f = new Intl.DateTimeFormat("en-US", { timeZone, ...WALL_CLOCK })));
  return f;
}

/** An IANA time zone (canonical or alias) this runtime knows. */
export function isTimeZone(name: string): boolean {
  if (name.length > 64 || !ZONE_SHAPE.test(name)) return false;
  try {
    formatter(name);
    return true;
  } catch {
    return false;
  }
}

export const unknownZone = (name: unknown) => `unknown time zone ${JSON.stringify(name)}: give an IANA name such as America/Los_Angeles`;

// Checked against the runtime's zone database (ICU); the producer also requires Postgres, which does the
// day arithmetic, to know the name (an abbreviation such as IST is a different zone to each).
export const timeZoneName = z.string().refine(isTimeZone, { error: (issue) => unknownZone(issue.input) });

// Coverage asks the same instants and days of every connection in scope: each is worked out once.
const clocks = new Map<string, { day: string; utcOfWall: number }>();

/** An instant's local day, and its wall-clock time read as if it were UTC. */
function wallClock(t: number, timeZone: string): { day: string; utcOfWall: number } {
  const key = `${t}|${timeZone}`;
  let clock = clocks.get(key);
  if (!clock) {
    if (clocks.size >= 10_000) clocks.clear();
    const parts = Object.fromEntries(
      formatter(timeZone)
        .formatToParts(new Date(t))
        .map((p) => [p.type, p.value]),
    );
    const day = `${parts.year!.padStart(4, "0")}-${parts.month}-${parts.day}`;
    clocks.set(key, (clock = { day, utcOfWall: Date.parse(`${day}T${parts.hour}:${parts.minute}:${parts.second}Z`) }));
  }
  return clock;
}

export const localDay = (instant: Date, timeZone: string): string => wallClock(instant.getTime(), timeZone).day;

/**
 * The first instant of a local day: its midnight, or the end of a DST gap at midnight. Tries the
 * zone's offsets around the day and keeps the earliest candidate that falls on it.
 */
export function dayStart(day: string, timeZone: string): Date {
  const midnight = Date.parse(`${day}T00:00:00Z`);
  let start = Infinity;
  for (const probe of [-14, -7, 0, 7, 14]) {
    const at = midnight + probe * 3_600_000;
    const offset = wallClock(at, timeZone).utcOfWall - Math.floor(at / 1000) * 1000;
    const candidate = midnight - offset;
    if (candidate < start && wallClock(candidate, timeZone).day === day) start = candidate;
  }
  return new Date(start);
}
