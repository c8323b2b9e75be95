import * as producer from "../../src/producer.js";
import { recordScenario } from "../support/fault-summary.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { dumpDatabase, findSecrets } from "../support/leaks.js";
import { generatePredictions, rng } from "../../dev/predictions.js";
import { dumpRedis } from "../support/redis.js";
import { checkpointPages, eventCounts, expectExact, waitForSyncedSince } from "../support/sync-checks.js";
import { WorkerProcess } from "../support/worker-process.js";

// Workers as real OS processes, killed with SIGKILL at random points of a 20k-prediction backfill.

const TIMEOUT = 240_000;

let h: Harness;
const processes: WorkerProcess[] = [];
beforeAll(async () => {
  // A short lock so a killed worker's job is taken over in about a second, not the default 30 s.
  h = await createHarness({ JOB_LOCK_MS: "1000", JOB_ATTEMPTS: "10", WORKER_CONCURRENCY: "4" }, { workers: false });
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill9()));
  await h.close();
});

const startWorker = (extraEnv: Record<string, string> = {}) => {
  const p = new WorkerProcess({ ...h.env, ...extraEnv });
  processes.push(p);
  return p.ready();
};

test(
  "kill -9 of the only worker at 6 random points of a 20k backfill: exact totals, one start and one finish event",
  async () => {
    const token = "r8_crashTestToken00000000000000000001";
    const truth = generatePredictions({ count: 20_000, days: 30, seed: 51 });
    h.fake.addAccount(token, { type: "organization", username: "crashco" }, truth);
    h.fake.pageLatencyMs = 8; // ~200 pages take a few seconds: room for kills mid-run

    let worker = await startWorker();
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-crash", token });
    const random = rng(5);
    const killedAtPages: number[] = [];
    for (let kill = 0; kill < 6; kill++) {
      // One kill in each seventh of the run, at a random page and a random moment within it
      // (mid-fetch, mid-transaction, between the write and the enqueue of the next page).
      const target = Math.floor(((kill + random()) * 200) / 7);
      await waitFor(
        "progress",
        () => checkpointPages(h, id),
        (p) => p >= target,
        60_000,
      );
      await new Promise((r) => setTimeout(r, random() * 40));
      killedAtPages.push(await checkpointPages(h, id));
      await worker.kill9();
      worker = await startWorker();
    }
    await waitForSyncedSince(h, id, null, 120_000);
    await expectExact(h, id, truth);
    expect(await eventCounts(h, id)).toMatchObject({ connected: 1, verified: 1, sync_started: 1, sync_completed: 1 });
    expect(killedAtPages.some((p) => p < 200)).toBe(true);

    const logs = processes.flatMap((p) => p.lines).join("\n");
    const leaks = findSecrets([token], {
      database: await dumpDatabase(h.t.url),
      redis: await dumpRedis(h.ctx.redis, h.config.queuePrefix),
      "worker logs": logs,
    });
    expect(leaks).toEqual([]);
    recordScenario({
      scenario: "kill -9 worker during backfill",
      injected: `6 SIGKILLs at pages ${killedAtPages.join(",")} of 200 (20k predictions)`,
      outcome: "exact totals; 1 sync_started, 1 sync_completed; token in no log/key/row",
    });
  },
  TIMEOUT,
);

test(
  "kill -9 whenever a time window of a parallel backfill (BACKFILL_PARALLELISM=4) is seen mid-read: each resumes at its page; exact",
  async () => {
    const token = "r8_crashWindowsToken000000000000000001";
    const truth = generatePredictions({ count: 20_000, days: 30, seed: 52, idPrefix: "win" });
    h.fake.addAccount(token, { type: "organization", username: "crashwindows" }, truth);
    // Slow pages and the shortest slice: each job saves a page or two, so a window stays mid-read
    // long enough to be seen there.
    h.fake.pageLatencyMs = 20;
    const env = { BACKFILL_PARALLELISM: "4", SYNC_SLICE_MS: "50" };
    const windows = async () => {
      const { syncState, lastSyncedAt } = await h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
      const all = Object.entries((syncState as { windows?: Record<string, { pagesDone: number; done: boolean }> } | null)?.windows ?? {});
      return { done: lastSyncedAt !== null, reading: all.filter(([, w]) => !w.done && w.pagesDone > 0).map(([windowId]) => windowId) };
    };

    let worker = await startWorker(env);
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-crash-windows", token });
    // Kill whenever a window is mid-read (a page saved, not done) that no kill has hit yet. What counts as hit is read after
    // the kill, when nothing moves any more (a window that finished just before it is not counted).
    const interrupted = new Set<string>();
    for (;;) {
      const state = await waitFor(
        "a window mid-read that no kill has hit yet, or the end of the run",
        windows,
        (s) => s.done || s.reading.some((w) => !interrupted.has(w)),
        120_000,
        5,
      );
      if (state.done) break;
      await worker.kill9();
      (await windows()).reading.forEach((w) => interrupted.add(w));
      worker = await startWorker(env);
    }
    await expectExact(h, id, truth);
    expect(await eventCounts(h, id)).toMatchObject({ sync_started: 1, sync_completed: 1 });
    // The run's windows, as Replicate saw them: one created_before per window (its id is its end).
    const windowEnds = new Set(
      h.fake.requests
        .filter((r) => r.authorization === `Bearer ${token}` && r.endpoint === "predictions")
        .map((r) => new URL(r.url, "http://x").searchParams.get("created_before"))
        .filter((end) => end !== null),
    );
    // Windows split as others finish, and a small one (a page or two) goes from unread to done in one
    // write, so not every window can be caught mid-read; the table says how many were.
    expect(interrupted.size).toBeGreaterThan(0);
    expect(windowEnds.size).toBeGreaterThanOrEqual(Math.max(interrupted.size, 4));
    await worker.stop();
    recordScenario({
      scenario: "kill -9 inside the windows of a parallel backfill",
      injected: `SIGKILL each time a window not hit yet was mid-read: ${interrupted.size} of the run's ${windowEnds.size} windows hit (20k predictions, 4 windows at once)`,
      outcome: "each window resumed at its saved page; exact totals; 1 sync_started, 1 sync_completed",
    });
  },
  TIMEOUT,
);

test(
  "two and three worker processes on the same queues: every connection exact",
  async () => {
    h.fake.pageLatencyMs = 2;
    for (const count of [2, 3]) {
      const fleet = await Promise.all(Array.from({ length: count }, () => startWorker({ LOG_LEVEL: "debug" })));
      const connections = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => {
          const token = `r8_fleet${count}x${i}token0000000000000000`;
          const truth = generatePredictions({ count: 3_000, days: 20, seed: 100 * count + i, idPrefix: `f${count}${i}` });
          h.fake.addAccount(token, { type: "user", username: `user${count}${i}` }, truth);
          const { id } = await producer.connect(h.ctx, { workspaceId: `ws-fleet-${count}-${i}`, token });
          return { id, truth };
        }),
      );
      for (const c of connections) {
        await waitForSyncedSince(h, c.id, null, 120_000);
        await expectExact(h, c.id, c.truth);
        expect(await eventCounts(h, c.id)).toMatchObject({ sync_started: 1, sync_completed: 1 });
      }
      const busy = fleet.filter((p) => p.lines.some((l) => l.includes('"job completed"')));
      await Promise.all(fleet.map((p) => p.stop()));
      recordScenario({
        scenario: `${count} worker processes at once`,
        injected: `4 connections × 3,000 predictions on one queue, ${count} processes`,
        outcome: `exact totals; ${busy.length}/${count} processes completed jobs`,
      });
    }
  },
  TIMEOUT,
);

test(
  "a worker process at full concurrency: every in-flight request listens to the shutdown signal without a listener-leak warning",
  async () => {
    h.fake.pageLatencyMs = 20;
    const worker = await startWorker({ WORKER_CONCURRENCY: "16" });
    const connections = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const token = `r8_listeners${i}token00000000000000000`;
        const truth = generatePredictions({ count: 500, days: 20, seed: 700 + i, idPrefix: `l${i}` });
        h.fake.addAccount(token, { type: "user", username: `listener${i}` }, truth);
        return { id: (await producer.connect(h.ctx, { workspaceId: `ws-listeners-${i}`, token })).id, truth };
      }),
    );
    for (const c of connections) {
      await waitForSyncedSince(h, c.id, null, 120_000);
      await expectExact(h, c.id, c.truth);
    }
    await worker.stop();
    // More requests in flight than node's default of 10 listeners per signal is normal here, not a leak.
    expect(worker.lines.filter((l) => l.includes("MaxListenersExceededWarning"))).toEqual([]);
  },
  TIMEOUT,
);
