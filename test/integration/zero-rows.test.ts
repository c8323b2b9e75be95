import * as producer from "../../src/producer.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { connect, withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { eventCounts, waitForSyncedSince } from "../support/sync-checks.js";

// fillZeros rows stand for days read without usage: a dashboard must find every measure a day with
// usage has, at zero (or null where nothing was priced), never a missing column.

const started = withApi();
const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);
let id: string;

beforeAll(async () => {
  const token = "r8_zeroRows000000000000000";
  const at = (offset: number) => new Date(Date.parse(`${day(offset)}T12:00:00Z`)).toISOString();
  const predictions: FakePrediction[] = [
    { id: "z1", status: "succeeded", created_at: at(-6), model: "meta/meta-llama-3-70b-instruct", metrics: { predict_time: 2.5 } },
    { id: "z2", status: "failed", created_at: at(-2), model: "acme/other", metrics: { predict_time: 1, input_token_count: 10 } },
  ];
  started.h.fake.addAccount(token, { type: "organization", username: "zero" }, predictions);
  ({ id } = await producer.connect(started.h.ctx, { workspaceId: "ws-zero", token }));
  await waitForSyncedSince(started.h, id, null);
});

const query = (groupBy: string) => `/v1/usage?connectionId=${id}&from=${day(-6)}&to=${day(-2)}&groupBy=${groupBy}&fillZeros=true`;

test("a zero row has every measure a row with usage has: counts and amounts 0, costs '0', what was priced null", async () => {
  for (const groupBy of ["date", "date,model", "date,connection,source"]) {
    const { body } = await started.api.call("GET", query(groupBy));
    const used = body.rows.filter((r: { predictions: number }) => r.predictions > 0);
    const zeros = body.rows.filter((r: { predictions: number }) => r.predictions === 0);
    expect([used.length, zeros.length]).toEqual([2, 3]);
    for (const zero of zeros) {
      expect(Object.keys(zero).sort()).toEqual(Object.keys(used[0]).sort());
      for (const [field, value] of Object.entries(used[0] as Record<string, unknown>)) {
        // A zero row is as final as its day; it was never written, so it has no refreshedAt.
        if (["date", "connectionId", "final"].includes(field)) continue;
        const expected =
          typeof value === "number" ? 0 : ["costBasis", "pricedShare"].includes(field) ? null : field.endsWith("Usd") ? "0" : null;
        expect({ groupBy, field, value: zero[field] }).toEqual({ groupBy, field, value: expected });
      }
    }
  }
});

test("grouped by status, a zero row has the per-status count", async () => {
  const { body } = await started.api.call("GET", query("date,status"));
  const zero = body.rows.find((r: { date: string }) => r.date === day(-4));
  const used = body.rows.find((r: { date: string }) => r.date === day(-6));
  expect(Object.keys(zero).sort()).toEqual(Object.keys(used).sort());
  expect(zero).toMatchObject({ status: null, predictions: 0 });
});

test("the in-process producer and the CSV give zero rows the same columns", async () => {
  const report = await producer.queryUsage(started.h.ctx, {
    connectionId: id,
    from: day(-6),
    to: day(-2),
    groupBy: ["date"],
    fillZeros: true,
  });
  expect(report.rows.map((r) => Object.keys(r).length)).toEqual(report.rows.map(() => Object.keys(report.rows[0]!).length));
  const { body: csv } = await started.api.call("GET", `${query("date")}&format=csv`);
  const [header, ...lines] = (csv as string)
    .trim()
    .split("\n")
    .map((l) => l.split(","));
  expect(lines).toHaveLength(5);
  for (const line of lines) expect(line).toHaveLength(header!.length);
  const zero = Object.fromEntries(header!.map((h, i) => [h, lines[2]![i]]));
  expect(zero).toMatchObject({
    line: "usage",
    date: day(-4),
    predictions: "0",
    billableSeconds: "0",
    inputTokens: "0",
    estimatedCostUsd: "0",
  });
});

test("rows come in one order (groupBy's, status last; a zero row's empty dimensions first) in any order groupBy lists them", async () => {
  const order = (groupBy: string[]) => [...groupBy.filter((g) => g !== "status"), ...groupBy.filter((g) => g === "status")];
  const field = (g: string) => (g === "connection" ? "connectionId" : g);
  const sorted = (rows: Record<string, string | null>[], groupBy: string[]) =>
    [...rows].sort((a, b) => {
      for (const g of order(groupBy).map(field)) {
        const [x, y] = [a[g] ?? null, b[g] ?? null];
        if (x !== y) return x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
      }
      return 0;
    });
  const keys = (rows: Record<string, string | null>[]) => rows.map(({ date, model, status }) => ({ date, model, status }));
  const answers: Record<string, Record<string, string | null>[]> = {};
  for (const groupBy of ["status,date", "date,status", "model,date", "date,model", "status,model,date", "connection,status,date"]) {
    const { body } = await started.api.call("GET", query(groupBy));
    expect({ groupBy, rows: keys(body.rows) }).toEqual({ groupBy, rows: keys(sorted(body.rows, groupBy.split(","))) });
    answers[groupBy] = body.rows;
  }
  expect(answers["status,date"]).toEqual(answers["date,status"]);
  expect(answers["status,date"]!.map((r) => r.date)).toEqual([day(-6), day(-5), day(-4), day(-3), day(-2)]);
});

test("a workspace whose connection was disconnected mid-backfill and connected again: a zero row for each day the new one read", async () => {
  const { h } = started;
  const at = (offset: number, i = 0) => new Date(Date.parse(`${day(offset)}T12:00:00Z`) - i * 1000).toISOString();
  // Two pages: the first is written, then a 429 for ten minutes holds the backfill.
  const predictions: FakePrediction[] = [
    { id: "r-late", status: "succeeded", created_at: at(-2), model: "acme/m", metrics: { predict_time: 1 } },
    ...Array.from({ length: 120 }, (_, i) => ({ id: `r-${i}`, status: "succeeded", created_at: at(-5, i), model: "acme/m" })),
  ];
  const hold = { kind: "status", status: 429, headers: { "retry-after": "600" } } as const;
  const account = { name: "reconnected", workspaceId: "ws-reconnect", predictions };
  const first = await connect(h, { ...account, token: "r8_reconnectFirst00000000000", faults: [{ kind: "delay", ms: 0 }, hold] });
  await waitFor(
    "the first page written and the backfill held",
    async () => {
      const written = await h.ctx.db.predictionRecord.count({ where: { connectionId: first.id, kind: "prediction" } });
      return [written, (await producer.getConnection(h.ctx, first.id)).health.state] as const;
    },
    ([written, state]) => written > 0 && state === "throttled",
  );
  await producer.disconnect(h.ctx, first.id);
  const second = await connect(h, { ...account, token: "r8_reconnectSecond0000000000" });
  await waitForSyncedSince(h, second.id, null);
  expect(await eventCounts(h, second.id)).toMatchObject({ history_moved: 1 });

  const range = `workspaceId=ws-reconnect&from=${day(-6)}&to=${day(0)}&groupBy=date&fillZeros=true`;
  const daily = async () =>
    (await started.api.call("GET", `/v1/usage?${range}`)).body.rows.map((r: { date: string; predictions: number }) => [
      r.date,
      r.predictions,
    ]);
  const everyDay = [-6, -5, -4, -3, -2, -1, 0].map((d) => [day(d), d === -5 ? 120 : d === -2 ? 1 : 0]);
  expect(await daily()).toEqual(everyDay);

  // A connection that has read nothing yet may still find usage on any day: while it reads, no day gets a zero row.
  const other = await connect(h, { name: "not-read-yet", workspaceId: "ws-reconnect", faults: [hold] });
  await waitFor(
    "the new connection's backfill held before its first page",
    async () => (await producer.getConnection(h.ctx, other.id)).health.state,
    (state) => state === "throttled",
  );
  expect(await daily()).toEqual(everyDay.filter(([, n]) => n !== 0));
  // Disconnected, it will never read: it holds back no day.
  await producer.disconnect(h.ctx, other.id);
  expect(await daily()).toEqual(everyDay);
});
