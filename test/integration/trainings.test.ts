import * as producer from "../../src/producer.js";
import { schedulerId } from "../../src/queue/queues.js";
import type { FakePrediction, FakeTraining } from "../../dev/fake-replicate.js";
import { actualUsage, expectedUsage, generatePredictions, generateTrainings } from "../../dev/predictions.js";
import { withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { eventCounts, waitForSyncedSince } from "../support/sync-checks.js";

// Trainings are usage: every run reads GET /v1/trainings (no time filter) from the newest training
// down to the first page older than its window start, and writes them through the same fenced write
// as predictions, with kind "training". Compared with the fake's own trainings, grouped in JS.

const started = withApi({ BACKFILL_DAYS: "30" });
const h = () => started.h;
const HOUR = 3_600_000;
const PAGE = 25;

beforeAll(() => {
  // Small pages, so the trainings of a backfill span several and where paging stops shows.
  h().fake.pageSize = PAGE;
});

const connectionState = (id: string) => h().ctx.db.connection.findUniqueOrThrow({ where: { id } });
const hoursAgo = (hours: number) => new Date(Date.now() - hours * HOUR).toISOString();
const utcDay = (iso: string) => iso.slice(0, 10);
const daysAgo = (days: number) => utcDay(new Date(Date.now() - days * 24 * HOUR).toISOString());

async function events(id: string, kind: string) {
  return h().ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: kind as never }, orderBy: { id: "asc" } });
}

/** The window [start, end) of the connection's latest run, from its sync_started event. */
async function lastWindow(id: string): Promise<{ start: number; end: number }> {
  const detail = (await events(id, "sync_started")).at(-1)!.detail as { windowStart: string; windowEnd: string };
  return { start: Date.parse(detail.windowStart), end: Date.parse(detail.windowEnd) };
}

const within = (w: { start: number; end: number }) => (t: FakeTraining) =>
  Date.parse(t.created_at) >= w.start && Date.parse(t.created_at) < w.end;
const asTrainings = (list: FakeTraining[]): FakePrediction[] => list.map((t) => ({ ...t, kind: "training" }));

/** GET /v1/trainings requests of this token made from request number `from` on. */
const trainingsRequests = (token: string, from = 0) =>
  h()
    .fake.requests.slice(from)
    .filter((r) => r.authorization === `Bearer ${token}` && r.endpoint === "trainings");

/** Pages a run must read: down to and including the first page holding a training older than `start` (newest first). */
function pagesToWindowStart(trainings: FakeTraining[], start: number): number {
  const older = trainings.findIndex((t) => Date.parse(t.created_at) < start);
  return older === -1 ? Math.max(1, Math.ceil(trainings.length / PAGE)) : Math.floor(older / PAGE) + 1;
}

const STATUS_ROW: Record<string, string> = { starting: "in_progress", processing: "in_progress" };

/** What GET /v1/usage grouped by date, kind, model and status must say of these trainings: counts per UTC day, model and status. */
function trainingsByDayModelStatus(trainings: FakeTraining[]): string[] {
  const counts = new Map<string, number>();
  for (const t of trainings) {
    const key = `${utcDay(t.created_at)} ${t.model} ${STATUS_ROW[t.status] ?? t.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${key} ${n}`).sort();
}

/** The same from the API, and the compute seconds per UTC day and model. */
async function usageOfTrainings(id: string) {
  const range = `connectionId=${id}&from=${daysAgo(31)}&to=${daysAgo(-1)}`;
  const byStatus = await started.api.call("GET", `/v1/usage?${range}&groupBy=date,kind,model,status`);
  const byModel = await started.api.call("GET", `/v1/usage?${range}&groupBy=date,kind,model`);
  expect([byStatus.status, byModel.status]).toEqual([200, 200]);
  type Row = { date: string; kind: string; model: string; status: string; predictions: number; computeSeconds: number };
  const trainingRows = (rows: Row[]) => rows.filter((r) => r.kind === "training");
  return {
    counts: trainingRows(byStatus.body.rows)
      .map((r) => `${r.date} ${r.model} ${r.status} ${r.predictions}`)
      .sort(),
    computeMicros: Object.fromEntries(
      trainingRows(byModel.body.rows).map((r) => [`${r.date} ${r.model}`, Math.round(r.computeSeconds * 1e6)]),
    ),
  };
}

function computeMicrosByDayModel(trainings: FakeTraining[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const t of trainings) {
    const key = `${utcDay(t.created_at)} ${t.model}`;
    sums[key] = (sums[key] ?? 0) + Math.round((t.metrics?.predict_time ?? 0) * 1e6);
  }
  return sums;
}

const training = (id: string, status: string, created: string, predictTime: number | null): FakeTraining => ({
  id,
  status,
  created_at: created,
  model: "ostris/flux-dev-lora-trainer",
  version: "v-lora",
  source: "api",
  started_at: status === "starting" ? null : created,
  completed_at: predictTime === null ? null : new Date().toISOString(),
  metrics: predictTime === null ? null : { predict_time: predictTime, total_time: predictTime + 1 },
  input: { input_images: "https://example.com/private.zip" },
  logs: "step 1/1000",
});

describe("a backfill and the run after it", () => {
  const token = "r8_trainingsBackfill0000000000";
  // Trainings over 45 days, of which the backfill window holds the last 30; two still running.
  const running = [
    training("late-processing", "processing", hoursAgo(3), null),
    training("late-starting", "starting", hoursAgo(0.5), null),
  ];
  const predictions = generatePredictions({ count: 120, days: 25, seed: 31, inFlightWithinMs: 6 * HOUR });
  let id: string;

  test("reads the trainings of its window: exact by UTC day, model and status; paging stops at the first page older than the window start", async () => {
    h().fake.addAccount(token, { type: "organization", username: "lora-lab" }, predictions, [
      ...generateTrainings({ count: 260, days: 45, seed: 32, inFlightWithinMs: 6 * HOUR }),
      ...running,
    ]);
    ({ id } = await producer.connect(h().ctx, { workspaceId: "ws-trainings", token }));
    await waitForSyncedSince(h(), id, null);

    const window = await lastWindow(id);
    const all = h().fake.trainings(token);
    const read = all.filter(within(window));
    expect(read.length).toBeGreaterThan(100);
    expect(read.length).toBeLessThan(all.length);
    expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(read)]));
    expect(await h().ctx.db.predictionRecord.count({ where: { connectionId: id, kind: "training" } })).toBe(read.length);
    const usage = await usageOfTrainings(id);
    expect(usage.counts).toEqual(trainingsByDayModelStatus(read));
    expect(usage.computeMicros).toEqual(computeMicrosByDayModel(read));

    // Newest first, down to the first page holding a training older than the window start, and not one page more.
    const requests = trainingsRequests(token);
    const pages = pagesToWindowStart(all, window.start);
    expect(pages).toBeLessThan(Math.ceil(all.length / PAGE));
    expect(requests.map((r) => r.status)).toEqual(Array.from({ length: pages }, () => 200));
    expect(requests[0]!.url).toBe("/v1/trainings");
    const [completed] = await events(id, "sync_completed");
    expect(completed!.detail).toMatchObject({ predictions: predictions.length, trainings: read.length, trainingPages: pages });
  });

  test("a training that finishes later moves from in progress to succeeded in the next run, its compute added once", async () => {
    const before = await connectionState(id);
    const first = await lastWindow(id);
    const ledger = () =>
      h().ctx.db.predictionRecord.findMany({
        where: { connectionId: id, kind: "training", predictionId: { in: running.map((t) => t.id) } },
        orderBy: { predictionId: "asc" },
      });
    expect((await ledger()).map((r) => [r.predictionId, r.status, r.predictTime])).toEqual([
      ["late-processing", "processing", null],
      ["late-starting", "starting", null],
    ]);

    const finished = [
      training("late-processing", "succeeded", hoursAgo(3), 5400.25),
      training("late-starting", "failed", hoursAgo(0.5), 12.5),
    ];
    h().fake.upsertTrainings(token, [...finished, training("after-first-run", "processing", new Date().toISOString(), null)]);
    const requestsBefore = h().fake.requests.length;
    await producer.syncNow(h().ctx, id);
    await waitForSyncedSince(h(), id, before.lastSyncedAt);

    const second = await lastWindow(id);
    const all = h().fake.trainings(token);
    const read = all.filter(within({ start: first.start, end: second.end }));
    expect(read.map((t) => t.id)).toContain("after-first-run");
    expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(read)]));
    expect((await ledger()).map((r) => [r.predictionId, r.status, r.predictTime])).toEqual([
      ["late-processing", "succeeded", 5400.25],
      ["late-starting", "failed", 12.5],
    ]);
    const usage = await usageOfTrainings(id);
    expect(usage.counts).toEqual(trainingsByDayModelStatus(read));
    expect(usage.computeMicros).toEqual(computeMicrosByDayModel(read));
    // The lookback run pages its trainings only down to its own window start.
    expect(trainingsRequests(token, requestsBefore)).toHaveLength(pagesToWindowStart(all, second.start));
    expect(await eventCounts(h(), id)).toMatchObject({ sync_started: 2, sync_completed: 2 });
  });
});

test("a connection that synced before trainings were read reads them back to BACKFILL_DAYS once, then only its window", async () => {
  const token = "r8_trainingsAfterUpgrade000000";
  const predictions = generatePredictions({ count: 30, days: 20, seed: 61, inFlightWithinMs: 6 * HOUR });
  h().fake.addAccount(token, { type: "user", username: "upgraded" }, predictions);
  const { id } = await producer.connect(h().ctx, { workspaceId: "ws-trainings-upgrade", token });
  const first = await waitForSyncedSince(h(), id, null);

  // Trainings a release that did not read them left unread, 40 over the last 20 days.
  const trainings = generateTrainings({ count: 40, days: 20, seed: 62, inFlightWithinMs: 6 * HOUR });
  h().fake.upsertTrainings(token, trainings);
  const before = h().fake.requests.length;
  await producer.syncNow(h().ctx, id);
  const second = await waitForSyncedSince(h(), id, first.lastSyncedAt);
  expect((await lastWindow(id)).start).toBeGreaterThan(Date.now() - 2 * 24 * HOUR); // a lookback run...
  expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(trainings)])); // ...reading every training
  expect(trainingsRequests(token, before)).toHaveLength(Math.ceil(trainings.length / PAGE));

  const again = h().fake.requests.length;
  await producer.syncNow(h().ctx, id);
  await waitForSyncedSince(h(), id, second.lastSyncedAt);
  expect(trainingsRequests(token, again)).toHaveLength(pagesToWindowStart(h().fake.trainings(token), (await lastWindow(id)).start));
  expect(pagesToWindowStart(h().fake.trainings(token), (await lastWindow(id)).start)).toBeLessThan(Math.ceil(trainings.length / PAGE));
  expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(trainings)]));
});

test("a 429 on /v1/trainings delays the run as on predictions: rate_limited, throttled health, then exact", async () => {
  const token = "r8_trainingsThrottled000000000";
  const trainings = generateTrainings({ count: 30, days: 10, seed: 41 });
  const predictions = generatePredictions({ count: 20, days: 10, seed: 42 });
  h().fake.addAccount(token, { type: "user", username: "throttled-trainer" }, predictions, trainings);
  h().fake.inject(token, "trainings", {
    kind: "status",
    status: 429,
    headers: { "retry-after": "2" },
    body: JSON.stringify({ detail: "Request was throttled. Expected available in 2 seconds." }),
  });
  const { id } = await producer.connect(h().ctx, { workspaceId: "ws-trainings-429", token });
  const throttled = await waitFor(
    "throttled health",
    () => producer.getConnection(h().ctx, id),
    (c) => c.health.state === "throttled",
  );
  expect(throttled.health.until).toBeTruthy();
  const [limited] = await events(id, "rate_limited");
  expect(limited).toMatchObject({ level: "warn", httpStatus: 429, retryAfterSeconds: 2 });

  await waitForSyncedSince(h(), id, null);
  expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(trainings)]));
  expect((await producer.getConnection(h().ctx, id)).health.state).toBe("healthy");
  expect(trainingsRequests(token).map((r) => r.status)).toEqual([429, 200, 200]);
  expect((await eventCounts(h(), id)).sync_failed).toBeUndefined();
});

test("a 5xx on /v1/trainings is retried as on predictions: provider_error, then exact", async () => {
  const token = "r8_trainingsFlaky00000000000000";
  const trainings = generateTrainings({ count: 10, days: 5, seed: 51 });
  h().fake.addAccount(token, { type: "user", username: "flaky-trainer" }, [], trainings);
  // Both tries of the client's first attempt; the job's next attempt succeeds.
  h().fake.inject(token, "trainings", { kind: "status", status: 503 }, { kind: "status", status: 503 });
  const { id } = await producer.connect(h().ctx, { workspaceId: "ws-trainings-5xx", token });
  await waitForSyncedSince(h(), id, null);
  const [failed] = await events(id, "provider_error");
  expect(failed).toMatchObject({ level: "warn", httpStatus: 503 });
  expect(failed!.message).toContain("/v1/trainings");
  expect(await actualUsage(h().ctx.db, id)).toEqual(expectedUsage(asTrainings(trainings)));
});

test.each([
  { status: 401, kind: "credential_invalid", detail: "You did not pass a valid authentication token" },
  { status: 403, kind: "scope_denied", detail: "You do not have permission" },
])("HTTP $status on /v1/trainings pauses the connection as on predictions ($kind, action_required)", async ({ status, kind, detail }) => {
  const token = `r8_trainings${status}Token00000000000`;
  h().fake.addAccount(token, { type: "user", username: `trainer-${status}` }, generatePredictions({ count: 30, seed: status }));
  h().fake.inject(token, "trainings", { kind: "status", status, body: JSON.stringify({ detail }) });
  const { id } = await producer.connect(h().ctx, { workspaceId: `ws-trainings-${status}`, token });
  await waitFor(
    "paused",
    () => connectionState(id),
    (c) => c.status === "credential_error",
  );
  const [paused] = await events(id, kind);
  expect(paused).toMatchObject({ level: "error", httpStatus: status });
  expect(paused!.message).toContain("Syncing is paused until the token is replaced");
  const { health } = await producer.getConnection(h().ctx, id);
  expect(health.state).toBe("action_required");
  expect(health.action).toBeTruthy();
  expect(await h().ctx.queues.queue("sync").getJobScheduler(schedulerId(id))).toBeFalsy();
  expect((await connectionState(id)).lastSyncedAt).toBeNull();
});
