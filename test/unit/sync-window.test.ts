import { advanceCheckpoint, newCheckpoint, syncWindowStart } from "../../src/sync/checkpoint.js";
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

test("a run is done at the last page, at a page wholly older than the window, or at an empty page", () => {
  const cp = newCheckpoint({ ...base, highWaterMark: new Date("2026-03-10T00:00:00.000Z") }, "run-1");
  expect(cp).toMatchObject({ windowStart: "2026-03-09T00:00:00.000Z", windowEnd: now.toISOString(), pagesDone: 0, done: false });
  const inside = new Date("2026-03-09T06:00:00.000Z");
  const older = new Date("2026-03-01T06:00:00.000Z");
  const page = (next: string | null, createdAts: Date[]) => advanceCheckpoint(cp, { next, createdAts, days: ["2026-03-09"] });
  expect(page("n", [inside, older]).done).toBe(false);
  expect(page("n", [older, older]).done).toBe(true);
  expect(page("n", []).done).toBe(true);
  expect(page(null, [inside])).toMatchObject({ done: true, pagesDone: 1, predictionsSeen: 1, daysTouched: ["2026-03-09"] });
});

test("Retry-After: seconds, HTTP date, body text, default", () => {
  const t0 = Date.parse("2026-03-10T12:00:00.000Z");
  expect(parseRetryAfter("12", undefined, t0)).toEqual({ seconds: 12, source: "header" });
  expect(parseRetryAfter("Tue, 10 Mar 2026 12:00:30 GMT", undefined, t0)).toEqual({ seconds: 30, source: "header" });
  expect(parseRetryAfter(undefined, "Request was throttled. Expected available in 1 second.", t0)).toEqual({ seconds: 1, source: "body" });
  expect(parseRetryAfter("soon", "nothing useful", t0)).toEqual({ seconds: 10, source: "default" });
  expect(parseRetryAfter("0", undefined, t0).seconds).toBe(1);
});
