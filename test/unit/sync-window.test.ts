import type { Prediction } from "../../src/replicate/schemas.js";
import {
  TRAININGS_WINDOW,
  advanceWindow,
  newCheckpoint,
  planWrite,
  readSince,
  runProgress,
  splitWindow,
  syncWindowStart,
  windowId,
  type Checkpoint,
} from "../../src/domain/checkpoint.js";
import { parseRetryAfter } from "../../src/replicate/retry-after.js";

const now = new Date("2026-03-10T12:00:00.000Z");
const base = { now, backfillDays: 90, lookbackHours: 24, highWaterMark: null, oldestUnfinished: null };

test("the first run backfills BACKFILL_DAYS", () => {
  expect(syncWindowStart(base).toISOString()).toBe("2025-12-10T12:00:00.000Z");
});

test("later runs start LOOKBACK_HOURS before the high-water mark, or at the oldest unfinished prediction", () => {
  const hwm = new Date("2026-03-10T11:00:00.000Z");
  expect(syncWindowStart({ ...base, highWaterMark: hwm }).toISOString()).toBe("2026-03-09T11:00:00.000Z");
  const stuck = new Date("2026-03-01T00:00:00.000Z");
  expect(syncWindowStart({ ...base, highWaterMark: hwm, oldestUnfinished: stuck }).toISOString()).toBe(stuck.toISOString());
  const ancient = new Date("2025-01-01T00:00:00.000Z");
  expect(syncWindowStart({ ...base, highWaterMark: hwm, oldestUnfinished: ancient }).toISOString()).toBe("2025-12-10T12:00:00.000Z");
});

test("a window is done at its last page, at a page reaching below its start, or at an empty page", () => {
  const cp = newCheckpoint({ ...base, highWaterMark: new Date("2026-03-10T00:00:00.000Z") }, "run-1");
  expect(cp).toMatchObject({ windowStart: "2026-03-09T00:00:00.000Z", windowEnd: now.toISOString(), pagesDone: 0, done: false });
  const w = Object.values(cp.windows)[0]!;
  expect(windowId(w)).toBe(now.getTime().toString(36));
  const inside = new Date("2026-03-09T06:00:00.000Z");
  const older = new Date("2026-03-01T06:00:00.000Z");
  const page = (next: string | null, createdAts: Date[]) => advanceWindow(w, { next, createdAts });
  expect(page("n", [inside, inside]).done).toBe(false);
  expect(page("n", [inside, older]).done).toBe(true);
  expect(page("n", []).done).toBe(true);
  expect(page(null, [inside])).toMatchObject({ done: true, pagesDone: 1, oldest: inside.toISOString() });
});

test("a busy window is split into equal parts, never past the parallelism, never into parts of a few pages", () => {
  const cp = newCheckpoint(base, "run-1");
  const w = Object.values(cp.windows)[0]!;
  // 2 pages read 1 day of 90: about 178 pages left.
  const busy = { ...w, pagesDone: 2, oldest: new Date(now.getTime() - 86_400_000).toISOString() };
  expect(splitWindow(busy, 1, 4)).toHaveLength(4);
  expect(splitWindow(busy, 3, 4)).toHaveLength(2);
  expect(splitWindow(busy, 4, 4)).toHaveLength(1);
  expect(splitWindow(busy, 1, 1)).toHaveLength(1);
  // Nearly read (the rest holds under MIN_PAGES_PER_SPLIT pages per part): not split.
  expect(splitWindow({ ...busy, oldest: new Date(Date.parse(w.start) + 3_600_000).toISOString() }, 1, 4)).toHaveLength(1);
  const [top, ...children] = splitWindow(busy, 1, 4);
  // The parts tile [start, oldest) and the window keeps its end (its id) and cursor.
  const edges = [top!, ...children].map((x) => [x.start, x.end]).sort();
  expect(edges[0]![0]).toBe(w.start);
  for (let i = 1; i < edges.length; i++) expect(edges[i]![0]).toBe(edges[i - 1]![1]);
  expect(top).toMatchObject({ end: w.end, pagesDone: 2 });
  expect(children.every((c) => c.pagesDone === 0 && c.nextUrl === null)).toBe(true);
});

test("after a split, a window writes only the predictions above its new start and stops there", () => {
  const cp = newCheckpoint(base, "run-1");
  const id = windowId(Object.values(cp.windows)[0]!);
  const at = (ms: number) => ({ created_at: new Date(ms) }) as Prediction;
  const hoursAgo = (h: number) => now.getTime() - h * 3_600_000;
  const first = planWrite(cp, id, [{ next: "n", results: [at(hoursAgo(1)), at(hoursAgo(2))] }], 4);
  expect(Object.keys(first.windows)).toHaveLength(4);
  expect(first.predictions).toHaveLength(2);
  const split = { ...cp, windows: { ...cp.windows, ...first.windows } };
  expect(first.splitFor).toBe(1);
  const boundary = Date.parse(first.windows[id]!.start);
  const next = planWrite(split, id, [{ next: "n", results: [at(boundary + 1), at(boundary), at(boundary - 1)] }], 4);
  expect(next.windows[id]!.done).toBe(true);
  expect(next.splitFor).toBeNull();
  expect(next.predictions.map((p) => p.created_at.getTime())).toEqual([boundary + 1, boundary]);
  expect(Object.keys(next.windows)).toEqual([id]);
});

test("a run reads its trainings beside its one window: over the whole run window, never split, not counted in the parallelism", () => {
  const cp = newCheckpoint(base, "run-1");
  const [first, trainings] = Object.values(cp.windows);
  expect(Object.keys(cp.windows)).toEqual([windowId(first!), TRAININGS_WINDOW]);
  expect(trainings).toEqual({ start: cp.windowStart, end: cp.windowEnd, nextUrl: null, pagesDone: 0, done: false, kind: "training" });
  expect(windowId(trainings!)).toBe(TRAININGS_WINDOW);
  // As busy as a window that splits four ways: trainings have no time filter, so one cursor reads them.
  const busy = { ...trainings!, pagesDone: 2, oldest: new Date(now.getTime() - 86_400_000).toISOString() };
  expect(splitWindow(busy, 1, 4)).toEqual([busy]);
  // The open trainings window takes no part of the parallelism: one window of predictions may still become four.
  const at = (ms: number) => ({ created_at: new Date(ms) }) as Prediction;
  const split = planWrite(cp, windowId(first!), [{ next: "n", results: [at(now.getTime() - 3_600_000)] }], 4);
  expect([split.splitFor, Object.keys(split.windows).length]).toEqual([1, 4]);
});

test("while the ledger holds no training, a later run reads trainings from the backfill start (a connection synced before they were read)", () => {
  const later = { ...base, highWaterMark: new Date("2026-03-10T00:00:00.000Z") };
  const read = newCheckpoint({ ...later, trainingsRead: true }, "run-1");
  expect(read.windows[TRAININGS_WINDOW]!.start).toBe(read.windowStart);
  const unread = newCheckpoint({ ...later, trainingsRead: false }, "run-1");
  expect(unread.windowStart).toBe("2026-03-09T00:00:00.000Z");
  expect(unread.windows[TRAININGS_WINDOW]).toMatchObject({ start: "2025-12-10T12:00:00.000Z", end: unread.windowEnd });
  // A first run backfills both anyway.
  const first = newCheckpoint({ ...base, trainingsRead: false }, "run-1");
  expect(first.windows[TRAININGS_WINDOW]!.start).toBe(first.windowStart);
});

test("the trainings window keeps the trainings of the run's window and is done at the first page older than its start", () => {
  const cp = newCheckpoint({ ...base, highWaterMark: new Date("2026-03-10T00:00:00.000Z") }, "run-1");
  const start = Date.parse(cp.windowStart);
  const end = Date.parse(cp.windowEnd);
  const at = (ms: number) => ({ id: String(ms), created_at: new Date(ms) }) as Prediction;
  const pages = [
    // Created during the run (the next run's), then inside the window.
    { next: "n1", results: [at(end + 60_000), at(end - 1), at(end - 3_600_000)] },
    { next: "n2", results: [at(start + 1), at(start), at(start - 1)] },
    { next: "n3", results: [at(start - 86_400_000)] },
  ];
  const plan = planWrite(cp, TRAININGS_WINDOW, pages, 4);
  expect(plan.pages).toBe(2);
  expect(plan.predictions.map((t) => t.created_at.getTime())).toEqual([end - 1, end - 3_600_000, start + 1, start]);
  expect(Object.keys(plan.windows)).toEqual([TRAININGS_WINDOW]);
  expect(plan.windows[TRAININGS_WINDOW]).toMatchObject({ done: true, pagesDone: 2, nextUrl: "n2", start: cp.windowStart });
  expect(plan.splitFor).toBeNull();
});

test("progress and coverage wait for the trainings: what is read is what both have read", () => {
  const cp = newCheckpoint(base, "run-1");
  const id = Object.keys(cp.windows)[0]!;
  const end = Date.parse(cp.windowEnd);
  const iso = (ms: number) => new Date(ms).toISOString();
  const half = end - 45 * 86_400_000;
  const withWindows = (predictions: object, trainings: object): Checkpoint => ({
    ...cp,
    windows: { [id]: { ...cp.windows[id]!, ...predictions }, [TRAININGS_WINDOW]: { ...cp.windows[TRAININGS_WINDOW]!, ...trainings } },
  });
  // Predictions all read, trainings not yet (or only trainings created after the run's window).
  for (const trainings of [{}, { pagesDone: 1, oldest: iso(end + 1000) }]) {
    const cpNow = withWindows({ done: true, pagesDone: 9 }, trainings);
    expect([runProgress(cpNow), readSince(cpNow)]).toEqual([0, null]);
  }
  const trainingsHalf = withWindows({ done: true, pagesDone: 9 }, { pagesDone: 1, oldest: iso(half) });
  expect([runProgress(trainingsHalf), readSince(trainingsHalf)?.toISOString()]).toEqual([0.5, iso(half)]);
  const predictionsHalf = withWindows({ pagesDone: 4, oldest: iso(half) }, { done: true, pagesDone: 1 });
  expect([runProgress(predictionsHalf), readSince(predictionsHalf)?.toISOString()]).toEqual([0.5, iso(half)]);
  // A run started before trainings were read has no trainings window: its windows alone say.
  const { [TRAININGS_WINDOW]: _, ...older } = predictionsHalf.windows;
  expect(readSince({ ...predictionsHalf, windows: older })?.toISOString()).toBe(iso(half));
});

test("Retry-After: seconds, HTTP date, body text, default", () => {
  const t0 = Date.parse("2026-03-10T12:00:00.000Z");
  expect(parseRetryAfter("12", undefined, t0)).toEqual({ seconds: 12, source: "header" });
  expect(parseRetryAfter("Tue, 10 Mar 2026 12:00:30 GMT", undefined, t0)).toEqual({ seconds: 30, source: "header" });
  expect(parseRetryAfter(undefined, "Request was throttled. Expected available in 1 second.", t0)).toEqual({ seconds: 1, source: "body" });
  expect(parseRetryAfter("soon", "nothing useful", t0)).toEqual({ seconds: 10, source: "default" });
  expect(parseRetryAfter("0", undefined, t0).seconds).toBe(1);
});
