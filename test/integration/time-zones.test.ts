import fc from "fast-check";
import * as producer from "../../src/producer.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { dayStart, isTimeZone, localDay } from "../../src/domain/calendar.js";
import { createConnection } from "../../src/repositories/connections.js";
import { generatePredictions } from "../../dev/predictions.js";
import { withApi } from "../support/api.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Usage read in the customer's own days: daily totals in Los Angeles (DST), Kolkata (+05:30) and
// Kathmandu (+05:45) equal a ground truth the test groups by local day with Intl, DST days (23 and
// 25 hours) and predictions on either side of local midnight included; in any zone the days sum to
// the UTC days' total.

const started = withApi({ BACKFILL_DAYS: "400" });
const ZONES = ["America/Los_Angeles", "Asia/Kolkata", "Asia/Kathmandu"];
// Its clocks change at midnight: a spring day starts at 01:00 (midnight is skipped), an autumn day's midnight follows a repeated hour.
const MIDNIGHT_DST = "America/Santiago";
const QUARTER_HOUR = 15 * 60_000;
const HOUR = 3_600_000;
const token = "r8_timeZones000000000000000";
let id: string;
let truth: FakePrediction[];

const dayFormats = new Map<string, Intl.DateTimeFormat>();
/** The test's own ground truth of a local day: Intl, independent of src/domain/calendar.ts. */
function localDate(t: number | string, timeZone: string): string {
  let f = dayFormats.get(timeZone);
  if (!f) dayFormats.set(timeZone, (f = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })));
  return f.format(new Date(t));
}

/** Local midnights (the first instant of a local day; every zone changes day on a quarter hour) in [from, to). */
function midnights(timeZone: string, from: number, to: number): number[] {
  const found: number[] = [];
  for (let t = Math.ceil(from / QUARTER_HOUR) * QUARTER_HOUR; t < to; t += QUARTER_HOUR) {
    if (localDate(t - 1, timeZone) !== localDate(t, timeZone)) found.push(t);
  }
  return found;
}

/** The local days of `zone` in the last year that are not 24 hours long, with their first and next midnight. */
function dstDays(now: number, zone = "America/Los_Angeles"): { day: string; start: number; end: number; hours: number }[] {
  const all = midnights(zone, now - 370 * 24 * HOUR, now - 2 * 24 * HOUR);
  return all
    .slice(0, -1)
    .map((start, i) => ({ day: localDate(start, zone), start, end: all[i + 1]!, hours: (all[i + 1]! - start) / HOUR }))
    .filter((d) => d.hours !== 24);
}

const p = (id: string, t: number, status = "succeeded", predictTime = 1.25): FakePrediction => ({
  id,
  status,
  created_at: new Date(t).toISOString(),
  model: "acme/edge",
  source: "api",
  started_at: new Date(t + 500).toISOString(),
  completed_at: new Date(t + 5000).toISOString(),
  metrics: { predict_time: predictTime, total_time: predictTime + 0.5 },
});

/** Per local day of `timeZone` in [from, to]: predictions and compute micro-seconds. */
function truthByDay(timeZone: string, from: string, to: string): Map<string, { predictions: number; computeMicros: number }> {
  const days = new Map<string, { predictions: number; computeMicros: number }>();
  for (const x of truth) {
    const day = localDate(x.created_at, timeZone);
    if (day < from || day > to) continue;
    const d = days.get(day) ?? days.set(day, { predictions: 0, computeMicros: 0 }).get(day)!;
    d.predictions++;
    d.computeMicros += Math.round((x.metrics?.predict_time ?? 0) * 1e6);
  }
  return days;
}

type Row = { date: string; predictions: number; computeSeconds: number; final: boolean; refreshedAt: string | null };
const byDay = (rows: Row[]) =>
  new Map(rows.map((r) => [r.date, { predictions: r.predictions, computeMicros: Math.round(r.computeSeconds * 1e6) }]));

let now: number;
let range: { from: string; to: string };

beforeAll(async () => {
  now = Date.now();
  const edges: FakePrediction[] = [];
  // Either side of every local midnight of the three zones on the days around LA's DST changes,
  // and inside the hour that repeats (fall) or is skipped (spring).
  for (const dst of dstDays(now)) {
    for (const [z, zone] of ZONES.entries()) {
      for (const m of midnights(zone, dst.start - 30 * HOUR, dst.end + 30 * HOUR)) {
        edges.push(p(`m${z}-${m}-a`, m - 1), p(`m${z}-${m}-b`, m), p(`m${z}-${m}-c`, m + 7 * 60_000, "failed", 0.5));
      }
    }
    for (let t = dst.start; t < dst.end; t += HOUR) edges.push(p(`h-${t}`, t + 30 * 60_000, "canceled", 2));
  }
  for (const dst of dstDays(now, MIDNIGHT_DST)) {
    for (const m of midnights(MIDNIGHT_DST, dst.start - 30 * HOUR, dst.end + 30 * HOUR)) {
      edges.push(p(`s-${m}-a`, m - 1), p(`s-${m}-b`, m), p(`s-${m}-c`, m + 7 * 60_000, "failed", 0.5));
    }
    for (let t = dst.start; t < dst.end; t += HOUR) edges.push(p(`sh-${t}`, t + 30 * 60_000, "canceled", 2));
  }
  truth = [...generatePredictions({ count: 2500, days: 380, seed: 20, inFlightWithinMs: 6 * HOUR }), ...edges];
  started.h.fake.addAccount(token, { type: "organization", username: "zones" }, truth);
  ({ id } = await producer.connect(started.h.ctx, { workspaceId: "ws-zones", token }));
  await waitForSyncedSince(started.h, id, null, 120_000);
  range = { from: localDate(now - 390 * 24 * HOUR, "UTC"), to: localDate(now + 24 * HOUR, "UTC") };
}, 180_000);

test.each(["America/Los_Angeles", MIDNIGHT_DST])(
  "%s's DST days in the last year are one of 23 and one of 25 hours (what the data straddles)",
  (zone) => {
    expect(
      dstDays(now, zone)
        .map((d) => d.hours)
        .sort(),
    ).toEqual([23, 25]);
  },
);

test.each([...ZONES, MIDNIGHT_DST])(
  "daily totals in %s equal the truth grouped by local day, DST days and midnights included",
  async (timeZone) => {
    const { status, body } = await started.api.call(
      "GET",
      `/v1/usage?connectionId=${id}&from=${range.from}&to=${range.to}&groupBy=date&timeZone=${encodeURIComponent(timeZone)}`,
    );
    expect(status).toBe(200);
    expect(body.timeZone).toBe(timeZone);
    expect(byDay(body.rows)).toEqual(truthByDay(timeZone, range.from, range.to));
    // The DST days themselves: every prediction created from its first to its next midnight (23 or 25 hours).
    if (timeZone === "America/Los_Angeles" || timeZone === MIDNIGHT_DST) {
      for (const dst of dstDays(now, timeZone)) {
        const inDay = truth.filter((x) => Date.parse(x.created_at) >= dst.start && Date.parse(x.created_at) < dst.end).length;
        expect(body.rows.find((r: Row) => r.date === dst.day)?.predictions).toBe(inDay);
      }
    }
  },
);

test("the CSV and the in-process producer give the same local days", async () => {
  const timeZone = "Asia/Kathmandu";
  const report = await producer.queryUsage(started.h.ctx, { connectionId: id, ...range, groupBy: ["date"], timeZone });
  expect(byDay(report.rows as Row[])).toEqual(truthByDay(timeZone, range.from, range.to));
  const csv = await started.api.call(
    "GET",
    `/v1/usage?connectionId=${id}&from=${range.from}&to=${range.to}&groupBy=date&timeZone=${timeZone}&format=csv`,
  );
  const [header, ...lines] = (csv.body as string).trim().split("\n");
  const columns = header!.split(",");
  const dates = lines.map((l) => l.split(",")[columns.indexOf("date")]);
  expect(dates).toEqual(report.rows.map((r) => r.date));
  expect(columns).toEqual(expect.arrayContaining(["final", "refreshedAt"]));
});

test("fillZeros fills the local days read, in the zone", async () => {
  const timeZone = "America/Los_Angeles";
  const { body } = await started.api.call(
    "GET",
    `/v1/usage?connectionId=${id}&from=${range.from}&to=${range.to}&groupBy=date&fillZeros=true&timeZone=${timeZone}`,
  );
  const [cov] = body.coverage;
  const dates: string[] = body.rows.map((r: Row) => r.date);
  expect(dates[0]).toBe(cov.from);
  expect(dates.at(-1)).toBe(cov.to);
  expect(new Set(dates).size).toBe(dates.length);
  // Consecutive calendar days, DST days counted once each.
  const next = (d: string) => new Date(Date.parse(`${d}T00:00:00Z`) + 24 * HOUR).toISOString().slice(0, 10);
  expect(dates.every((d, i) => i === 0 || d === next(dates[i - 1]!))).toBe(true);
  expect(cov.days.map((d: { date: string }) => d.date)).toEqual(dates);
});

test("property: in any zone and over any range of its days, rows sum to the predictions created on those days; over everything, to the UTC total", async () => {
  const zones = [...Intl.supportedValuesOf("timeZone"), "UTC", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"];
  const total = truth.length;
  const utc = await producer.queryUsage(started.h.ctx, { connectionId: id, ...range, groupBy: ["model"], timeZone: "UTC" });
  const sum = (rows: { predictions: number }[]) => rows.reduce((s, r) => s + r.predictions, 0);
  expect(sum(utc.rows)).toBe(total);
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...zones),
      fc.integer({ min: 0, max: 389 }),
      fc.integer({ min: 0, max: 60 }),
      fc.subarray(["date", "model", "source", "kind"] as const),
      async (timeZone, back, length, groupBy) => {
        const from = localDate(now - back * 24 * HOUR, timeZone);
        const to = localDate(now - (back - length) * 24 * HOUR, timeZone);
        const part = await producer.queryUsage(started.h.ctx, { connectionId: id, from, to, groupBy: [...groupBy], timeZone });
        const expected = truth.filter((x) => {
          const day = localDate(x.created_at, timeZone);
          return day >= from && day <= to;
        }).length;
        expect(sum(part.rows)).toBe(expected);
        const all = await producer.queryUsage(started.h.ctx, { connectionId: id, ...range, groupBy: [...groupBy], timeZone });
        expect(sum(all.rows)).toBe(total);
      },
    ),
    { numRuns: 25 },
  );
});

test("an unknown time zone is a 400 naming timeZone; offsets, POSIX rules, abbreviations and names only one of ICU and Postgres knows are not zones", async () => {
  // ICU reads IST as India and PST with DST, Postgres as Israel (+02) and a fixed -08: both must know a name as a zone.
  const oneSided = ["IST", "PST", "BST", "AST", "CST", "US/Pacific-New", "Canada/East-Saskatchewan", "SystemV/EST5EDT"];
  for (const zone of ["Mars/Olympus_Mons", "+05:30", "UTC+3", "America/Los_Angeles'; --", ...oneSided]) {
    const { status, body } = await started.api.call(
      "GET",
      `/v1/usage?connectionId=${id}&from=${range.from}&to=${range.to}&timeZone=${encodeURIComponent(zone)}`,
    );
    expect([zone, status, body.error]).toEqual([zone, 400, "validation_failed"]);
    expect(body.issues.join(" ")).toMatch(/^timeZone: unknown time zone/);
  }
  for (const zone of ["Atlantis/Capital", "Canada/East-Saskatchewan"]) {
    const put = await started.api.call("PUT", "/v1/workspaces/ws-zones/settings", { timeZone: zone });
    expect([zone, put.status, put.body.issues]).toEqual([zone, 400, [expect.stringMatching(/^timeZone: unknown time zone "/)]]);
  }
  await expect(producer.queryUsage(started.h.ctx, { connectionId: id, ...range, timeZone: "Nowhere" })).rejects.toThrow(/timeZone/);
});

test("the workspace's default zone applies when a query names none, by workspace or by connection", async () => {
  expect((await started.api.call("GET", "/v1/workspaces/ws-zones/settings")).body).toEqual({
    workspaceId: "ws-zones",
    timeZone: null,
    updatedAt: null,
  });
  const utc = await producer.queryUsage(started.h.ctx, { workspaceId: "ws-zones", ...range, groupBy: ["date"] });
  expect(utc.timeZone).toBe("UTC");

  const put = await started.api.call("PUT", "/v1/workspaces/ws-zones/settings", { timeZone: "Asia/Kathmandu" });
  expect(put).toMatchObject({ status: 200, body: { workspaceId: "ws-zones", timeZone: "Asia/Kathmandu", updatedAt: expect.any(String) } });
  expect(await producer.getWorkspaceSettings(started.h.ctx, "ws-zones")).toMatchObject({ timeZone: "Asia/Kathmandu" });
  const kathmandu = truthByDay("Asia/Kathmandu", range.from, range.to);
  for (const scope of [`workspaceId=ws-zones`, `connectionId=${id}`]) {
    const { body } = await started.api.call("GET", `/v1/usage?${scope}&from=${range.from}&to=${range.to}&groupBy=date`);
    expect(body.timeZone).toBe("Asia/Kathmandu");
    expect(byDay(body.rows)).toEqual(kathmandu);
  }
  // A zone named in the query wins; null sets the default back to UTC.
  const named = await producer.queryUsage(started.h.ctx, {
    workspaceId: "ws-zones",
    ...range,
    groupBy: ["date"],
    timeZone: "Asia/Kolkata",
  });
  expect(named.timeZone).toBe("Asia/Kolkata");
  await producer.updateWorkspaceSettings(started.h.ctx, "ws-zones", { timeZone: null });
  expect((await producer.queryUsage(started.h.ctx, { workspaceId: "ws-zones", ...range, groupBy: ["date"] })).timeZone).toBe("UTC");
});

test("a whole-UTC-day row (history from before quarter hours) counts under its UTC date; coverage says which days are UTC-only in the zone", async () => {
  const { db, vault } = started.h.ctx;
  const { id: old } = await createConnection(db, vault, "ws-history", "r8_historyOnly000000000");
  const day = "2026-01-15";
  const columns =
    "connection_id, workspace_id, bucket_start, bucket_minutes, model, deployment, source, predictions, succeeded, failed, canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions";
  await db.$executeRawUnsafe(
    `INSERT INTO usage_buckets (${columns}) VALUES
       ($1::uuid, 'ws-history', '${day}T00:00:00Z', 1440, 'acme/m', '', '', 7, 7, 0, 0, 0, 0, 0, 14, 14, 7),
       ($1::uuid, 'ws-history', '${day}T23:45:00Z', 15, 'acme/m', '', '', 1, 1, 0, 0, 0, 0, 0, 2, 2, 1)`,
    old,
  );
  const query = (timeZone: string) =>
    producer.queryUsage(started.h.ctx, { connectionId: old, from: "2026-01-14", to: "2026-01-16", groupBy: ["date"], timeZone });
  const la = await query("America/Los_Angeles");
  expect(la.rows.map((r) => [r.date, r.predictions])).toEqual([[day, 8]]);
  expect(la.coverage[0]!.utcOnly).toEqual([{ from: day, to: day }]);
  // Exact where the zone is at UTC all that day (London in January), and in UTC itself.
  for (const timeZone of ["UTC", "Europe/London"]) {
    const exact = await query(timeZone);
    expect(exact.rows.map((r) => [r.date, r.predictions])).toEqual([[day, 8]]);
    expect(exact.coverage[0]!.utcOnly).toEqual([]);
  }
  const kolkata = await query("Asia/Kolkata");
  expect(kolkata.rows.map((r) => [r.date, r.predictions])).toEqual([
    [day, 7],
    ["2026-01-16", 1],
  ]);
});

test("the zones the boundary accepts are zones Postgres knows, and both put a local day's first instant at the same time", async () => {
  const db = started.h.ctx.db;
  const zones = [...Intl.supportedValuesOf("timeZone"), "UTC", "Etc/UTC", "Asia/Kolkata", "Asia/Kathmandu", "US/Pacific"];
  expect(zones.every(isTimeZone)).toBe(true);
  const known = await db.$queryRawUnsafe<{ name: string }[]>(`SELECT name FROM pg_timezone_names WHERE name = ANY($1::text[])`, zones);
  expect(zones.filter((z) => !known.some((k) => k.name === z))).toEqual([]);
  // Days with a DST change at midnight (Santiago, Havana, Asunción) included: the first instant is the gap's end.
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...zones, "America/Santiago", "America/Havana", "America/Asuncion"),
      fc.integer({ min: 0, max: 3000 }),
      async (zone, n) => {
        const day = new Date(Date.UTC(2020, 0, 1) + n * 24 * HOUR).toISOString().slice(0, 10);
        const [pg] = await db.$queryRawUnsafe<{ start: Date }[]>(`SELECT ($1::date)::timestamp AT TIME ZONE $2::text AS start`, day, zone);
        expect({ zone, day, start: dayStart(day, zone).toISOString() }).toEqual({ zone, day, start: pg!.start.toISOString() });
        expect(localDay(dayStart(day, zone), zone)).toBe(day);
      },
    ),
    { numRuns: 300 },
  );
  for (const [zone, day, start] of [
    ["America/Santiago", "2022-09-11", "2022-09-11T04:00:00.000Z"],
    ["America/Los_Angeles", "2026-11-01", "2026-11-01T07:00:00.000Z"],
    ["Asia/Kathmandu", "2026-03-08", "2026-03-07T18:15:00.000Z"],
  ] as const) {
    expect(dayStart(day, zone).toISOString()).toBe(start);
  }
});
