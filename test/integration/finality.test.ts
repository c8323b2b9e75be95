import * as producer from "../../src/producer.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { withApi } from "../support/api.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// `final` and `refreshedAt` on rows and coverage days. A day is final when everything on it was
// terminal when read and no later sync can read it again: the next run starts LOOKBACK_HOURS (24)
// before the last one ended, or earlier at the oldest prediction not yet finished.

const started = withApi();
const DAY = 86_400_000;
const now = Date.now();
const day = (offset: number) => new Date(now + offset * DAY).toISOString().slice(0, 10);
const noon = (offset: number) => Date.parse(`${day(offset)}T12:00:00Z`);
const token = "r8_finality0000000000000000";
let id: string;

const p = (id: string, t: number, status = "succeeded"): FakePrediction => ({
  id,
  status,
  created_at: new Date(t).toISOString(),
  model: "acme/m",
  source: "api",
  metrics: status === "processing" ? null : { predict_time: 2 },
});
const stuck = p("stuck", noon(-5) + 60_000, "processing");
const predictions = [
  p("old-1", noon(-10)),
  p("old-2", noon(-10) + 3_600_000, "failed"),
  p("mid-1", noon(-5)),
  stuck,
  p("later", noon(-3)),
  // Today's noon may be ahead of now: a minute ago is today (unless the test starts in the first minute of a UTC day).
  p("today", Math.min(noon(0), now - 60_000)),
];

type Row = { date?: string; model?: string; predictions: number; final: boolean; refreshedAt: string | null };
type Coverage = { finalThrough: string | null; days: { date: string; final: boolean; refreshedAt: string | null }[] };
const usage = async (query: string): Promise<{ rows: Row[]; coverage: Coverage[] }> =>
  (await started.api.call("GET", `/v1/usage?connectionId=${id}&timeZone=UTC&${query}`)).body;
const finalByDate = (rows: Row[]) => Object.fromEntries(rows.map((r) => [r.date, r.final]));
const lastSynced = async () => (await started.h.ctx.db.connection.findUniqueOrThrow({ where: { id } })).lastSyncedAt!;

let firstRun: { start: Date; done: Date };

beforeAll(async () => {
  started.h.fake.addAccount(token, { type: "organization", username: "finality" }, predictions);
  ({ id } = await producer.connect(started.h.ctx, { workspaceId: "ws-final", token }));
  await waitForSyncedSince(started.h, id, null);
  firstRun = { start: await lastSynced(), done: new Date() };
});

test("an old terminal day is final; a day with a prediction still processing is not, nor any day a later run re-reads", async () => {
  const { rows, coverage } = await usage(`from=${day(-12)}&to=${day(0)}&groupBy=date`);
  expect(finalByDate(rows)).toEqual({ [day(-10)]: true, [day(-5)]: false, [day(-3)]: false, [day(0)]: false });
  // refreshedAt: when the first run wrote the day's page (lastSyncedAt is that run's start).
  for (const r of rows) {
    expect(Date.parse(r.refreshedAt!)).toBeGreaterThanOrEqual(firstRun.start.getTime());
    expect(Date.parse(r.refreshedAt!)).toBeLessThanOrEqual(firstRun.done.getTime());
  }
  // Coverage says it for every day read, with or without usage.
  const [cov] = coverage;
  expect(cov!.finalThrough).toBe(day(-6));
  expect(cov!.days.filter((d) => d.final).map((d) => d.date)).toEqual([-12, -11, -10, -9, -8, -7, -6].map(day));
  expect(cov!.days.find((d) => d.date === day(-9))).toEqual({ date: day(-9), final: true, refreshedAt: null });

  // A row over several days is final only when every day of it is.
  expect((await usage(`from=${day(-12)}&to=${day(0)}&groupBy=model`)).rows).toMatchObject([{ model: "acme/m", final: false }]);
  expect((await usage(`from=${day(-12)}&to=${day(-6)}&groupBy=model`)).rows).toMatchObject([{ model: "acme/m", final: true }]);
  // fillZeros rows are final like their day.
  const filled = await usage(`from=${day(-12)}&to=${day(-4)}&groupBy=date&fillZeros=true`);
  expect(filled.rows.find((r) => r.date === day(-8))).toMatchObject({ predictions: 0, final: true, refreshedAt: null });
  expect(filled.rows.find((r) => r.date === day(-4))).toMatchObject({ predictions: 0, final: false });
});

test("once the prediction finishes and a sync reads it, its day and the days past the lookback are final; refreshedAt moves only where read", async () => {
  const before = await lastSynced();
  started.h.fake.upsertPredictions(token, [{ ...stuck, status: "succeeded", metrics: { predict_time: 3 } }]);
  await producer.syncNow(started.h.ctx, id);
  await waitForSyncedSince(started.h, id, before);
  const secondStart = await lastSynced();

  const { rows, coverage } = await usage(`from=${day(-12)}&to=${day(0)}&groupBy=date`);
  // The next run starts 24 h before this one's end: yesterday and today can still change.
  expect(finalByDate(rows)).toEqual({ [day(-10)]: true, [day(-5)]: true, [day(-3)]: true, [day(0)]: false });
  expect(coverage[0]!.finalThrough).toBe(day(-2));
  const refreshed = Object.fromEntries(rows.map((r) => [r.date, Date.parse(r.refreshedAt!)]));
  // This run read from the unfinished prediction on: day -5 on. Day -10 was last read by the first run.
  expect(refreshed[day(-10)]).toBeLessThan(secondStart.getTime());
  for (const d of [-5, -3, 0]) expect(refreshed[day(d)]).toBeGreaterThanOrEqual(secondStart.getTime());
});

test("grouped by status, refreshedAt is when that status's predictions were last written, not another connection's later write", async () => {
  const { h } = started;
  const shared = (id: string, status: string): FakePrediction => ({ ...p(id, noon(-4)), status, model: "acme/shared" });
  const sync = async (name: string, prediction: FakePrediction) => {
    const token = `r8_statusRefresh${name}000000000`;
    h.fake.addAccount(token, { type: "organization", username: `status-${name}` }, [prediction]);
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-status-refresh", token });
    return waitForSyncedSince(h, id, null);
  };
  // Two accounts, the same model and day: the failed prediction is written first, the succeeded one by a later run.
  await sync("failed", shared("s-failed", "failed"));
  const failedWritten = Date.now();
  const later = await sync("succeeded", shared("s-succeeded", "succeeded"));
  expect(later.lastSyncedAt!.getTime()).toBeGreaterThanOrEqual(failedWritten);

  const { body } = await started.api.call(
    "GET",
    `/v1/usage?workspaceId=ws-status-refresh&timeZone=UTC&from=${day(-4)}&to=${day(-4)}&groupBy=date,status`,
  );
  const refreshed = Object.fromEntries(
    body.rows.map((r: { status: string; refreshedAt: string }) => [r.status, Date.parse(r.refreshedAt)]),
  );
  expect(Object.keys(refreshed).sort()).toEqual(["failed", "succeeded"]);
  expect(refreshed.failed).toBeLessThanOrEqual(failedWritten);
  expect(refreshed.succeeded).toBeGreaterThanOrEqual(later.lastSyncedAt!.getTime());
});

test("a disconnected connection is never read again: its days are final", async () => {
  await producer.disconnect(started.h.ctx, id);
  const { rows } = await usage(`from=${day(-12)}&to=${day(0)}&groupBy=date`);
  expect(rows.every((r) => r.final)).toBe(true);
});
