import { z } from "zod";

// Postgres takes years 4713 BC to 294276 AD; usage starts long after 1970, so anything earlier is a mistake.
const EPOCH_DAY = "1970-01-01";
/** A UTC calendar day (YYYY-MM-DD) from 1970 on. */
export const isoDay = z.iso.date().refine((d) => d >= EPOCH_DAY && d <= "9999-12-31", "must be a day from 1970-01-01 to 9999-12-31");
/** An ISO 8601 instant with a zone, from 1970 on. */
export const isoInstant = z.iso
  .datetime({ offset: true })
  .refine((t) => Date.parse(t) >= 0 && t.slice(0, 4) <= "9999", "must be a time from 1970-01-01T00:00:00Z on");

/** The UTC calendar day (YYYY-MM-DD) of an instant: the day a prediction's usage counts under. */
export const utcDay = (d: Date): string => d.toISOString().slice(0, 10);
