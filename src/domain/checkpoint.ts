import { randomUUID } from "node:crypto";
import { z } from "zod";
import { DAY_MS, utcDay } from "./calendar.js";

/** What the checkpoint needs of a prediction or a training: when it was created. */
type Created = { created_at: Date };

/**
 * Where a sync run is: disjoint time windows of predictions partitioning [windowStart, windowEnd),
 * each paged newest first by its own cursor, and one trainings window. Each is saved in the statement
 * that writes its pages, so a crashed window resumes after its last written page and a page is never
 * applied under two checkpoints.
 */
export const windowSchema = z.object({
  /** created_after (inclusive). Moves up when the window is split: the part below goes to a new window. */
  start: z.iso.datetime(),
  /** created_before (exclusive); never changes, so it names the window (see windowId). */
  end: z.iso.datetime(),
  /** Link to the next page, or null before the first page. */
  nextUrl: z.string().nullable(),
  pagesDone: z.number().int().nonnegative(),
  /** created_at of the oldest prediction this window has read (pages are newest first). */
  oldest: z.iso.datetime().optional(),
  done: z.boolean(),
  /** "training": GET /v1/trainings has no time filter, so it is paged from the newest down past `start`; never split. */
  kind: z.literal("training").optional(),
});

export const checkpointSchema = z.object({
  runId: z.string().min(1),
  startedAt: z.iso.datetime(),
  /** created_after of the run (inclusive). */
  windowStart: z.iso.datetime(),
  /** created_before of the run (exclusive): the run's start, so predictions made meanwhile go to the next run. */
  windowEnd: z.iso.datetime(),
  /** The windows partitioning [windowStart, windowEnd), and the trainings window over all of it (or more, see newCheckpoint), by windowId. */
  windows: z.record(z.string(), windowSchema),
  /** Totals over every window (summed in the write statement, so concurrent windows never lose one). */
  pagesDone: z.number().int().nonnegative(),
  predictionsSeen: z.number().int().nonnegative(),
  /** Trainings written (their pages are the trainings window's pagesDone, not in pagesDone). Absent in runs started before trainings were read. */
  trainingsSeen: z.number().int().nonnegative().default(0),
  daysTouched: z.array(z.string()),
  done: z.boolean(),
});

export type Checkpoint = z.infer<typeof checkpointSchema>;
export type SyncWindow = z.infer<typeof windowSchema>;

export interface WindowInputs {
  now: Date;
  highWaterMark: Date | null;
  /** created_at of the oldest prediction (or training) not yet in a terminal status. */
  oldestUnfinished: Date | null;
  /** The ledger holds a training of the connection (see newCheckpoint); absent: it does. */
  trainingsRead?: boolean;
  backfillDays: number;
  lookbackHours: number;
}

const HOUR = 3_600_000;
/** A window is split only when it still holds at least this many pages per part (a split costs a request and a job). */
export const MIN_PAGES_PER_SPLIT = 4;

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

/** The trainings window's id. Read as a time window's id (base 36) it would end in the year 4630: no time window has it. */
export const TRAININGS_WINDOW = "trainings";

/** A window's id: its end, which no split changes and no two disjoint windows share. Safe in job ids. */
export const windowId = (w: Pick<SyncWindow, "end" | "kind">) =>
  w.kind === "training" ? TRAININGS_WINDOW : Date.parse(w.end).toString(36);

const freshWindow = (start: string, end: string): SyncWindow => ({ start, end, nextUrl: null, pagesDone: 0, done: false });

const isTimeWindow = (w: SyncWindow) => w.kind !== "training";

/**
 * A run starts as one window of predictions (split once its pages show it is busy, see planWrite) and
 * the trainings window beside it. While the ledger holds no training, trainings are read from the
 * backfill start: a connection that synced before trainings were read never read its earlier ones
 * (re-reading counts nothing twice; an account without trainings reads one empty page either way).
 */
export function newCheckpoint(w: WindowInputs, runId: string = randomUUID()): Checkpoint {
  const now = w.now.toISOString();
  const first = freshWindow(syncWindowStart(w).toISOString(), now);
  const trainingsFrom = w.trainingsRead === false ? syncWindowStart({ ...w, highWaterMark: null }).toISOString() : first.start;
  const trainings: SyncWindow = { ...freshWindow(trainingsFrom, now), kind: "training" };
  return {
    runId,
    startedAt: now,
    windowStart: first.start,
    windowEnd: now,
    windows: { [windowId(first)]: first, [windowId(trainings)]: trainings },
    pagesDone: 0,
    predictionsSeen: 0,
    trainingsSeen: 0,
    daysTouched: [],
    done: false,
  };
}

/**
 * The window after one more page: done at its last page, at an empty page (one linking onward would
 * loop forever on a misbehaving server), or at the first page reaching below its start (pages are
 * newest first, so all of [start, end) is read).
 */
export function advanceWindow(w: SyncWindow, page: { next: string | null; createdAts: Date[] }): SyncWindow {
  const times = page.createdAts.map((d) => d.getTime());
  const pageOldest = Math.min(...times);
  const oldest = Math.min(w.oldest ? Date.parse(w.oldest) : Infinity, pageOldest);
  return {
    ...w,
    nextUrl: page.next,
    pagesDone: w.pagesDone + 1,
    done: page.next === null || times.length === 0 || pageOldest < Date.parse(w.start),
    ...(Number.isFinite(oldest) ? { oldest: new Date(oldest).toISOString() } : {}),
  };
}

/**
 * Splits what is left of a busy window, [start, oldest read), into equal parts while fewer than
 * `parallelism` windows are open and each part would hold MIN_PAGES_PER_SPLIT pages (estimated from
 * those read). The window keeps the top part, where its cursor is; the others start fresh.
 */
export function splitWindow(w: SyncWindow, openWindows: number, parallelism: number): SyncWindow[] {
  // Trainings cannot be asked for by time: only the one cursor from the newest reads them.
  if (!isTimeWindow(w) || w.done || !w.oldest || w.pagesDone === 0) return [w];
  const start = Date.parse(w.start);
  const oldest = Date.parse(w.oldest);
  const covered = Date.parse(w.end) - oldest;
  const left = oldest - start;
  if (covered <= 0 || left <= 1) return [w];
  const pagesLeft = (w.pagesDone * left) / covered;
  const parts = Math.min(parallelism - openWindows + 1, Math.floor(pagesLeft / MIN_PAGES_PER_SPLIT), left);
  if (parts < 2) return [w];
  const cuts = Array.from({ length: parts + 1 }, (_, i) => new Date(start + Math.round((left * i) / parts)).toISOString());
  const children = cuts.slice(0, parts - 1).map((from, i) => freshWindow(from, cuts[i + 1]!));
  return [{ ...w, start: cuts[parts - 1]! }, ...children];
}

/** One fenced write of a window's pages: what it stores, and the window it continues. */
export interface PlannedWrite<P extends Created = Created> {
  runId: string;
  windowId: string;
  /** The window as the pages were read from it: the write applies only while it is still the stored one. */
  expected: SyncWindow;
  /** The windows the write stores (the window itself and any split off), by windowId. */
  windows: Record<string, SyncWindow>;
  /** The predictions (or trainings) this window owns: created in [start, end) of the window after the write. */
  predictions: P[];
  pages: number;
  days: string[];
  /** When the write splits the window, the open windows the split was planned for (the fence checks them). */
  splitFor: number | null;
}

/**
 * What writing `pages` of window `id` stores: the advanced window, split if busy, and only the
 * predictions inside it. Windows are disjoint, so no two ever write the same prediction; one below a
 * split point is left to the new window owning it. The trainings window keeps only the run's window:
 * older trainings were read by an earlier run (or lie before the backfill), newer ones are the next run's.
 */
export function planWrite<P extends Created>(
  cp: Checkpoint,
  id: string,
  pages: { next: string | null; results: P[] }[],
  parallelism: number,
): PlannedWrite<P> {
  const expected = cp.windows[id]!;
  let w = expected;
  let used = 0;
  for (const page of pages) {
    if (w.done) break;
    w = advanceWindow(w, { next: page.next, createdAts: page.results.map((p) => p.created_at) });
    used++;
  }
  // Open time windows are what the parallelism bounds (the one trainings window is read beside them).
  const open = openWindows(cp).filter(([, x]) => isTimeWindow(x)).length;
  const [kept, ...children] = splitWindow(w, open, parallelism);
  const from = Date.parse(kept!.start);
  const to = Date.parse(kept!.end);
  const predictions = pages
    .slice(0, used)
    .flatMap((p) => p.results)
    .filter((p) => p.created_at.getTime() >= from && p.created_at.getTime() < to);
  return {
    runId: cp.runId,
    windowId: id,
    expected,
    windows: Object.fromEntries([kept!, ...children].map((x) => [windowId(x), x])),
    predictions,
    pages: used,
    days: utcDaysOf(predictions),
    splitFor: children.length > 0 ? open : null,
  };
}

/** The UTC days `records` were created on, in order: a page spans a day or two, so each is formatted once. */
function utcDaysOf(records: Created[]): string[] {
  const days = new Set(records.map((p) => Math.floor(p.created_at.getTime() / DAY_MS)));
  return [...days].sort((a, b) => a - b).map((d) => utcDay(new Date(d * DAY_MS)));
}

/** Windows still to read (the trainings window included). */
export const openWindows = (cp: Checkpoint) => Object.entries(cp.windows).filter(([, w]) => !w.done);

export const trainingsWindow = (cp: Checkpoint): SyncWindow | undefined => cp.windows[TRAININGS_WINDOW];

/** Where a window's reading begins: its start once done, else the oldest record read within [start, end] (newer trainings are read too). */
function readFrom(w: SyncWindow): number {
  if (w.done) return Date.parse(w.start);
  if (!w.oldest) return Date.parse(w.end);
  return Math.min(Date.parse(w.end), Math.max(Date.parse(w.oldest), Date.parse(w.start)));
}

/** Share of the run's window read so far (0–1, two decimals): by its time windows, and no more than its trainings. */
export function runProgress(cp: Checkpoint): number {
  if (cp.done) return 1;
  const end = Date.parse(cp.windowEnd);
  const span = end - Date.parse(cp.windowStart);
  if (span <= 0) return 1;
  const windows = Object.values(cp.windows).filter(isTimeWindow);
  const trainings = trainingsWindow(cp);
  const shares = [windows.reduce((sum, w) => sum + Date.parse(w.end) - readFrom(w), 0) / span];
  if (trainings) shares.push((end - readFrom(trainings)) / span);
  return Math.round(Math.min(1, Math.max(0, Math.min(...shares))) * 100) / 100;
}

/** The earliest t such that [t, windowEnd) is read without a gap (windows are read concurrently), trainings too; null if none. */
export function readSince(cp: Checkpoint): Date | null {
  const windows = Object.values(cp.windows)
    .filter(isTimeWindow)
    .sort((a, b) => Date.parse(b.end) - Date.parse(a.end));
  let since: number | null = null;
  for (const w of windows) {
    if (since !== null && Date.parse(w.end) < since) break;
    if (w.done || w.oldest) since = readFrom(w);
    if (!w.done) break;
  }
  const trainings = trainingsWindow(cp);
  if (since === null || !trainings) return since === null ? null : new Date(since);
  const trainingsFrom = readFrom(trainings);
  return trainingsFrom < Date.parse(trainings.end) ? new Date(Math.max(since, trainingsFrom)) : null;
}

export function parseCheckpoint(value: unknown): Checkpoint | null {
  const parsed = checkpointSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
