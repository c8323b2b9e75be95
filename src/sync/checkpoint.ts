import { randomUUID } from "node:crypto";
import { z } from "zod";

/**
 * Where a sync run is: saved in the same transaction as each page's rows, so a crashed run resumes
 * at the page after the last one written, and a page is never applied under two checkpoints.
 */
export const checkpointSchema = z.object({
  runId: z.string().min(1),
  startedAt: z.iso.datetime(),
  /** created_after of the run (inclusive). */
  windowStart: z.iso.datetime(),
  /** created_before of the run (exclusive): the run's start, so predictions made meanwhile go to the next run. */
  windowEnd: z.iso.datetime(),
  /** Link to the next page, or null before the first page. */
  nextUrl: z.string().nullable(),
  pagesDone: z.number().int().nonnegative(),
  predictionsSeen: z.number().int().nonnegative(),
  daysTouched: z.array(z.string()),
  done: z.boolean(),
  /** created_at of the oldest prediction read so far (pages are newest first): how far back the run has got. */
  oldestCreatedAt: z.iso.datetime().optional(),
});

export type Checkpoint = z.infer<typeof checkpointSchema>;

export interface WindowInputs {
  now: Date;
  highWaterMark: Date | null;
  /** created_at of the oldest prediction not yet in a terminal status. */
  oldestUnfinished: Date | null;
  backfillDays: number;
  lookbackHours: number;
}

const HOUR = 3_600_000;

/**
 * First run: the last `backfillDays`. Later runs: from `lookbackHours` before the high-water mark,
 * or earlier if a prediction not yet finished is older, so its final state is read; never further
 * back than `backfillDays` (a prediction stuck for longer is not worth re-reading every run).
 */
export function syncWindowStart(w: WindowInputs): Date {
  const backfill = w.now.getTime() - w.backfillDays * 24 * HOUR;
  if (!w.highWaterMark) return new Date(backfill);
  const lookback = w.highWaterMark.getTime() - w.lookbackHours * HOUR;
  return new Date(Math.max(backfill, Math.min(lookback, w.oldestUnfinished?.getTime() ?? Infinity)));
}

export function newCheckpoint(w: WindowInputs, runId: string = randomUUID()): Checkpoint {
  const now = w.now.toISOString();
  return {
    runId,
    startedAt: now,
    windowStart: syncWindowStart(w).toISOString(),
    windowEnd: now,
    nextUrl: null,
    pagesDone: 0,
    predictionsSeen: 0,
    daysTouched: [],
    done: false,
  };
}

/**
 * The checkpoint after one more page. The run is done at the last page, or at the first page whose
 * predictions are all older than the window (a server that ignores created_after).
 */
export function advanceCheckpoint(cp: Checkpoint, page: { next: string | null; createdAts: Date[]; days: string[] }): Checkpoint {
  const windowStart = Date.parse(cp.windowStart);
  const whollyOlder = page.createdAts.length > 0 && page.createdAts.every((d) => d.getTime() < windowStart);
  const oldest = Math.min(cp.oldestCreatedAt ? Date.parse(cp.oldestCreatedAt) : Infinity, ...page.createdAts.map((d) => d.getTime()));
  return {
    ...cp,
    nextUrl: page.next,
    pagesDone: cp.pagesDone + 1,
    predictionsSeen: cp.predictionsSeen + page.createdAts.length,
    daysTouched: [...new Set([...cp.daysTouched, ...page.days])].sort(),
    // An empty page that still links onward would loop forever on a misbehaving server.
    done: page.next === null || page.createdAts.length === 0 || whollyOlder,
    ...(Number.isFinite(oldest) ? { oldestCreatedAt: new Date(oldest).toISOString() } : {}),
  };
}

export function parseCheckpoint(value: unknown): Checkpoint | null {
  const parsed = checkpointSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
