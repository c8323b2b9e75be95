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
