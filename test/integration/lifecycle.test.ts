import * as producer from "../../src/producer.js";
import { schedulerId } from "../../src/queue/queues.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { actualUsage, expectedUsage, generatePredictions } from "../../dev/predictions.js";
import { dumpRedis } from "../support/redis.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const connectionState = (id: string) => h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const eventKinds = async (id: string) =>
  (await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id }, orderBy: { id: "asc" } })).map((e) => e.kind);

test("connect → verify → backfill → incremental → disconnect, with exact aggregates", async () => {
  const token = "r8_lifecycleToken0000000000000000000";
  const predictions = generatePredictions({ count: 430, days: 60, seed: 7 });
  h.fake.addAccount(token, { type: "organization", username: "acme" }, predictions);

  const created = await producer.connect(h.ctx, { workspaceId: "ws-1", token });
  expect(created.status).toBe("pending");
  expect(JSON.stringify(created)).not.toContain("lifecycleToken");

  const synced = await waitFor(
    "first sync",
    () => connectionState(created.id),
    (c) => c.lastSyncedAt !== null,
  );
  expect(synced).toMatchObject({ status: "connected", accountUsername: "acme", accountType: "organization" });
  expect(await actualUsage(h.ctx.db, created.id)).toEqual(expectedUsage(predictions));
  expect(await h.ctx.queues.queue("sync").getJobScheduler(schedulerId(created.id))).toBeTruthy();

  // New predictions and finished ones arrive; syncNow picks them up.
  const later = generatePredictions({ count: 40, days: 0.02, seed: 8, idPrefix: "n" });
  const finished = predictions
    .filter((p) => p.status === "processing")
    .map((p) => ({ ...p, status: "succeeded", metrics: { predict_time: 1.5 } }));
  h.fake.upsertPredictions(token, [...later, ...finished]);
  await producer.syncNow(h.ctx, created.id);
  await waitFor(
    "second sync",
    () => connectionState(created.id),
    (c) => c.lastSyncedAt!.getTime() > synced.lastSyncedAt!.getTime(),
  );
  expect(await actualUsage(h.ctx.db, created.id)).toEqual(expectedUsage(h.fake.predictions(token)));
  const completed = await h.ctx.db.integrationEvent.findFirst({
    where: { connectionId: created.id, kind: "sync_completed" },
    orderBy: { id: "asc" },
  });
  expect(completed?.detail).toMatchObject({ pages: 5, predictions: 430 });

  await producer.disconnect(h.ctx, created.id);
  const gone = await connectionState(created.id);
  expect(gone).toMatchObject({ status: "disconnected", tokenCiphertext: null, tokenKeyId: null });
  expect(await h.ctx.queues.queue("sync").getJobScheduler(schedulerId(created.id))).toBeFalsy();
  await producer.disconnect(h.ctx, created.id); // idempotent
  expect(await eventKinds(created.id)).toEqual([
    "connected",
    "verified",
    "sync_started",
    "sync_completed",
    "sync_started",
    "sync_completed",
    "disconnected",
  ]);
  expect(await dumpRedis(h.ctx.redis, h.config.queuePrefix)).not.toContain("lifecycleToken");
});

test("401 at verify marks credential_error without retrying; replaceToken resumes", async () => {
  const conn = await producer.connect(h.ctx, { workspaceId: "ws-2", token: "r8_revokedToken00000000" });
  await waitFor(
    "credential error",
    () => connectionState(conn.id),
    (c) => c.status === "credential_error",
  );
  const events = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: conn.id, kind: "credential_invalid" } });
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ level: "error", httpStatus: 401 });
  expect(h.fake.requests.filter((r) => r.authorization === "Bearer r8_revokedToken00000000")).toHaveLength(1);

  const good = "r8_replacementToken000000000";
  h.fake.addAccount(good, { type: "user", username: "bob" }, generatePredictions({ count: 12, seed: 3 }));
  await producer.replaceToken(h.ctx, conn.id, good);
  await waitFor(
    "sync after new token",
    () => connectionState(conn.id),
    (c) => c.status === "connected" && c.lastSyncedAt !== null,
  );
  expect(await actualUsage(h.ctx.db, conn.id)).toEqual(expectedUsage(h.fake.predictions(good)));
});

test("429 delays only that connection; another connection completes meanwhile", async () => {
  const slow = "r8_throttledToken00000000";
  const fast = "r8_unaffectedToken0000000";
  h.fake.addAccount(slow, { type: "user", username: "slow" }, generatePredictions({ count: 150, seed: 5 }));
  h.fake.addAccount(fast, { type: "user", username: "fast" }, generatePredictions({ count: 150, seed: 6 }));
  h.fake.inject(slow, "predictions", {
    kind: "status",
    status: 429,
    headers: { "retry-after": "2" },
    body: JSON.stringify({ detail: "Request was throttled. Expected available in 2 seconds." }),
  });
  const a = await producer.connect(h.ctx, { workspaceId: "ws-4", token: slow });
  const b = await producer.connect(h.ctx, { workspaceId: "ws-4", token: fast });
  await waitFor(
    "fast connection synced",
    () => connectionState(b.id),
    (c) => c.lastSyncedAt !== null,
  );
  expect((await connectionState(a.id)).lastSyncedAt).toBeNull();
  const limited = await h.ctx.db.integrationEvent.findFirst({ where: { connectionId: a.id, kind: "rate_limited" } });
  expect(limited).toMatchObject({ httpStatus: 429, retryAfterSeconds: 2 });
  await waitFor(
    "throttled connection synced",
    () => connectionState(a.id),
    (c) => c.lastSyncedAt !== null,
  );
  expect(await actualUsage(h.ctx.db, a.id)).toEqual(expectedUsage(h.fake.predictions(slow)));
});

test.each([
  { status: 401, kind: "credential_invalid", detail: "You did not pass a valid authentication token" },
  { status: 403, kind: "scope_denied", detail: "You do not have permission" },
])("HTTP $status mid-sync pauses the connection ($kind) and removes its scheduler", async ({ status, kind, detail }) => {
  const token = `r8_midSync${status}Token000000000`;
  h.fake.addAccount(token, { type: "user", username: `u${status}` }, generatePredictions({ count: 250, seed: status }));
  // Page 1 is served, the next request fails (set before connecting: the run would read its 3 pages before a poll sees it verified).
  h.fake.inject(token, "predictions", { kind: "delay", ms: 0 }, { kind: "status", status, body: JSON.stringify({ detail }) });
  const conn = await producer.connect(h.ctx, { workspaceId: `ws-${status}`, token });
  await waitFor(
    "paused",
    () => connectionState(conn.id),
    (c) => c.status === "credential_error",
  );
  expect(await eventKinds(conn.id)).toContain(kind);
  expect(await h.ctx.queues.queue("sync").getJobScheduler(schedulerId(conn.id))).toBeFalsy();
});

test("5xx that outlasts every retry fails the run; the next run resumes from the checkpoint and is exact", async () => {
  const token = "r8_flakyProvider0000000000";
  h.fake.addAccount(token, { type: "user", username: "f" }, generatePredictions({ count: 350, seed: 10 }));
  // Page 1 succeeds; then every request fails, on every client retry of every job attempt (2 × JOB_ATTEMPTS=3)
  // of every window the run was split into, until each window's job gives up.
  // Set before connecting: injected after page 1 is seen, the run could already have read the other pages.
  h.fake.inject(token, "predictions", { kind: "delay", ms: 0 });
  h.fake.failEvery(token, "predictions", { kind: "status", status: 503 });
  const conn = await producer.connect(h.ctx, { workspaceId: "ws-6", token });
  await waitFor(
    "sync_failed",
    () => eventKinds(conn.id),
    (k) => k.includes("sync_failed"),
  );
  await waitFor(
    "every window's job gave up",
    () => h.ctx.queues.queue("sync").getJobs(["active", "waiting", "delayed", "prioritized"]),
    (jobs) => !jobs.some((j) => j?.name.startsWith("slice ") && j.data.connectionId === conn.id),
  );
  h.fake.clearFaults(token);
  const failed = await connectionState(conn.id);
  expect(failed.lastSyncedAt).toBeNull();
  const events = await h.ctx.db.integrationEvent.findMany({
    where: { connectionId: conn.id, kind: "provider_error" },
    orderBy: { id: "asc" },
  });
  expect(events.length).toBeGreaterThanOrEqual(3);
  expect(events.at(-1)).toMatchObject({ level: "error", httpStatus: 503 });

  await producer.syncNow(h.ctx, conn.id);
  await waitFor(
    "resumed run completes",
    () => connectionState(conn.id),
    (c) => c.lastSyncedAt !== null,
  );
  expect(await actualUsage(h.ctx.db, conn.id)).toEqual(expectedUsage(h.fake.predictions(token)));
  const completed = await h.ctx.db.integrationEvent.findFirst({ where: { connectionId: conn.id, kind: "sync_completed" } });
  // 350 predictions are 4 full pages; each window split off ends with a partial page of its own.
  expect(completed?.detail).toMatchObject({ predictions: 350 });
  expect((completed?.detail as { pages: number }).pages).toBeGreaterThanOrEqual(4);
  // Resumed, not restarted: one run started before the first completion (the syncNow, made after that run's window
  // ended, is served by the run that follows it), and each window's first page (a request without a cursor) read once.
  const kinds = await eventKinds(conn.id);
  expect(kinds.slice(0, kinds.indexOf("sync_completed")).filter((k) => k === "sync_started")).toHaveLength(1);
  const firstPages = h.fake.requests.filter(
    (r) => r.authorization === `Bearer ${token}` && r.endpoint === "predictions" && !r.url.includes("cursor=") && r.status === 200,
  );
  expect(new Set(firstPages.map((r) => r.url)).size).toBe(firstPages.length);
});

test("a window that splits and then reads to its end in the same slice, on a page wholly below its new start, hands on the windows split off", async () => {
  const token = "r8_splitThenCloseToken00000000000000";
  // 300 predictions in the last hours (three whole pages), 300 more two months back: the first page
  // splits the run's window, the kept top part's fourth page lies wholly below its new start.
  const now = Date.now();
  const predictions = generatePredictions({ count: 600, days: 1, seed: 11 }).map((p, i) => ({
    ...p,
    created_at: new Date(i < 300 ? now - 60_000 - i * 60_000 : now - 60 * 86_400_000 - (i - 300) * 60_000).toISOString(),
  }));
  h.fake.addAccount(token, { type: "organization", username: "split-close" }, predictions);
  // One page at a time reaches the writer, so the split and the close are separate writes of one slice.
  h.fake.pageLatencyMs = 30;
  try {
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-split-close", token });
    await waitFor(
      "first sync",
      () => connectionState(id),
      (c) => c.lastSyncedAt !== null,
      20_000,
    );
    expect(await actualUsage(h.ctx.db, id)).toEqual(expectedUsage(predictions));
  } finally {
    h.fake.pageLatencyMs = 0;
  }
});

test("syncNow while the tick that finished a run is still running (its deployments read held open) starts another run", async () => {
  const token = "r8_syncNowAfterRunToken000000000000";
  h.fake.addAccount(token, { type: "user", username: "sync-now-late" }, generatePredictions({ count: 40, seed: 12 }));
  // The first run's deployments read fails, so the next run reads them again.
  h.fake.failEvery(token, "deployments", { kind: "status", status: 404 });
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-sync-now-late", token });
  const first = await waitFor(
    "first sync",
    () => connectionState(id),
    (c) => c.lastSyncedAt !== null,
  );
  await waitFor(
    "deployments read failed",
    () => eventKinds(id),
    (kinds) => kinds.includes("enrichment_failed"),
  );
  h.fake.failEvery(token, "deployments", null);
  // The second run's deployments read is held open past its one page: its tick is still running once the run has finished.
  let release!: () => void;
  h.fake.inject(token, "deployments", { kind: "hold", until: new Promise<void>((resolve) => (release = resolve)) });
  try {
    await producer.syncNow(h.ctx, id);
    const second = await waitFor(
      "second sync",
      () => connectionState(id),
      (c) => c.lastSyncedAt! > first.lastSyncedAt!,
    );
    expect(await h.ctx.queues.queue("sync").getActiveCount()).toBe(1);
    await producer.syncNow(h.ctx, id);
    await waitFor(
      "the run the second syncNow asked for",
      () => connectionState(id),
      (c) => c.lastSyncedAt! > second.lastSyncedAt!,
      20_000,
    );
  } finally {
    release();
  }
});

test("syncNow during a run: another run follows it and reads what was made after the run began", async () => {
  const token = "r8_syncNowDuringRunToken000000000000";
  const predictions = generatePredictions({ count: 500, days: 1, seed: 13 });
  h.fake.addAccount(token, { type: "user", username: "sync-now-during" }, predictions);
  h.fake.pageLatencyMs = 400; // the run stays open for seconds
  try {
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-sync-now-during", token });
    await waitFor(
      "run under way",
      () => connectionState(id),
      (c) => c.syncState !== null,
    );
    // Made after the run's window ended: only a run that starts after it reads it.
    const late = generatePredictions({ count: 3, days: 1, seed: 14, idPrefix: "late" }).map((p) => ({
      ...p,
      created_at: new Date(Date.now() + 1).toISOString(),
    }));
    h.fake.upsertPredictions(token, late);
    await producer.syncNow(h.ctx, id);
    await waitFor(
      "the late predictions read",
      () => actualUsage(h.ctx.db, id),
      (usage) => JSON.stringify(usage) === JSON.stringify(expectedUsage([...predictions, ...late])),
      30_000,
    );
  } finally {
    h.fake.pageLatencyMs = 0;
  }
});
