import { randomUUID } from "node:crypto";
import { Worker } from "bullmq";
import { processors } from "../../jobs/index.js";
import type { Processors } from "../../src/context.js";
import * as producer from "../../src/producer.js";
import { reconcile } from "../../src/lifecycle/reconcile.js";
import { startWorkers } from "../../src/queue/workers.js";
import { createConnection } from "../../src/repositories/connections.js";
import { withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";
import { dumpRedis } from "../support/redis.js";

// The queue registry: operators see every queue (bull-board lists it, /metrics reports its depth), a
// job kind without a processor stops start-up, and a job runs as what its name says.

const EVERY_QUEUE = ["erase", "maintenance", "sync", "verify", "webhook"];

const started = withApi();

test("bull-board lists every queue: verify, sync, webhook deliveries, maintenance and erasure", async () => {
  const { status, body } = await started.api.call("GET", "/admin/queues/api/queues");
  expect(status).toBe(200);
  expect((body.queues as { name: string }[]).map((q) => q.name).sort()).toEqual(EVERY_QUEUE);
});

test("/metrics has a depth series for every queue", async () => {
  const { status, body } = await started.api.call("GET", "/metrics");
  expect(status).toBe(200);
  const queues = new Set([...(body as string).matchAll(/^rus_queue_jobs\{queue="([^"]+)",state="waiting"\}/gm)].map((m) => m[1]));
  expect([...queues].sort()).toEqual(EVERY_QUEUE);
});

test("start-up refuses a job kind without a processor, naming its queue", () => {
  const { slice: _, ...withoutSlice } = processors(started.h.ctx);
  const setup = { redis: started.h.ctx.redis, config: started.h.config, onFailure: () => Promise.reject(), onFinished: () => undefined };
  expect(() => startWorkers({ ...setup, processors: withoutSlice as Processors })).toThrow(
    /queue "sync" has no processor for "slice" jobs/,
  );
});

test("a sync job runs as what its name says: a tick carrying a slice's fields starts a run and reads it", async () => {
  const { h } = started;
  const token = "r8_dispatchByName0000000000";
  h.fake.addAccount(token, { type: "user", username: "dispatch" });
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-dispatch", token });
  await waitForSyncedSince(h, id, null);
  const sliceFields = { runId: "not-a-run", window: "0", page: 1 };
  const job = await h.ctx.queues.queue("sync").add("tick ws-dispatch", { connectionId: id, ...sliceFields });
  const done = await waitFor(
    "the tick finished",
    () => h.ctx.queues.queue("sync").getJob(job.id!),
    (j) => j?.finishedOn !== undefined,
  );
  // The tick that starts a run reads its first slice itself: an account this small is synced by that one job.
  expect(done!.returnvalue).toMatchObject({ outcome: "completed", predictions: 0 });
});

test("an erasure's purge leaves nothing of the connection, not even a tick waiting to run after the active one", async () => {
  const { h } = started;
  const connectionId = randomUUID();
  await h.service.stopWorkers();
  // Takes the tick by hand, so it stays active while the test looks.
  const connection = h.ctx.redis.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker("sync", null, { connection, prefix: h.config.queuePrefix, autorun: false });
  try {
    await h.ctx.queues.enqueue("tick", { connectionId });
    const active = await worker.getNextJob("test-lock", { block: false });
    expect(active?.data).toEqual({ connectionId });
    await h.ctx.queues.enqueue("tick", { connectionId }, { afterActive: true });
    // As an erasure does: a first pass while the tick runs; the tick fails and waits for its retry; a second pass.
    expect(await h.ctx.queues.purgeConnection(connectionId)).toMatchObject({ active: 1 });
    await active!.moveToFailed(new Error("stopped by the test"), "test-lock");
    expect(await h.ctx.queues.purgeConnection(connectionId)).toMatchObject({ active: 0 });
    expect(await dumpRedis(h.ctx.redis, h.config.queuePrefix)).not.toContain(connectionId);
  } finally {
    await worker.close(true);
    connection.disconnect();
    await h.service.startWorkers();
  }
});

test("a scheduler first ticks one interval on, and upserting it again keeps that tick", async () => {
  const { h } = started;
  await h.service.stopWorkers();
  const id = randomUUID();
  try {
    const before = Date.now();
    await h.ctx.queues.upsertScheduler(id);
    const next = (await h.ctx.queues.nextSyncAt(id))!.getTime();
    expect(next).toBeGreaterThanOrEqual(before + h.config.sync.intervalMinutes * 60_000);
    await h.ctx.queues.upsertScheduler(id);
    expect((await h.ctx.queues.nextSyncAt(id))!.getTime()).toBe(next);
  } finally {
    await h.ctx.queues.removeScheduler(id);
    await h.ctx.queues.purgeConnection(id);
    await h.service.startWorkers();
  }
});

test("the reconciler restores a lost scheduler one interval on and ticks the connection once itself", async () => {
  const { h } = started;
  await h.service.stopWorkers();
  const { id } = await createConnection(h.ctx.db, h.ctx.vault, "ws-restore", "r8_restoredScheduler0000000000000");
  await h.ctx.db.connection.update({ where: { id }, data: { status: "connected" } });
  try {
    const before = Date.now();
    expect((await reconcile(h.ctx)).added).toBe(1);
    expect((await h.ctx.queues.nextSyncAt(id))!.getTime()).toBeGreaterThanOrEqual(before + h.config.sync.intervalMinutes * 60_000);
    const pending = await h.ctx.queues.queue("sync").getJobs(["waiting", "delayed", "prioritized"]);
    expect(pending.filter((j) => j?.data.connectionId === id && j.delay === 0).map((j) => j.name)).toEqual([
      expect.stringMatching(/^tick /),
    ]);
  } finally {
    await producer.disconnect(h.ctx, id);
    await h.ctx.queues.purgeConnection(id);
    await h.service.startWorkers();
  }
});
