import fc from "fast-check";
import { pruneStep, PRUNE_MARGIN_DAYS } from "../../src/lifecycle/prune.js";
import { ReplicateClient } from "../../src/replicate/client.js";
import { completeRun } from "../../src/repositories/runs.js";
import { openWindows } from "../../src/domain/checkpoint.js";
import { beginRun, runSlice } from "../../src/sync/run.js";
import { FakeReplicate, type FakePrediction } from "../../dev/fake-replicate.js";
import { actualUsage, expectedUsage } from "../../dev/predictions.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";

// Pruning the ledger must never change a total, and never let a later read count a pruned
// prediction again: simulated weeks of daily runs, predictions finishing days after they start,
// prunes at random days.

let t: TestDatabase;
const fake = new FakeReplicate();
let client: ReplicateClient;
const DAY = 86_400_000;
const START = Date.parse("2026-01-01T00:00:00.000Z");
const SETTINGS = { backfillDays: 10, lookbackHours: 2 };
const done = { kind: "sync_completed" as const, level: "info" as const, message: "done" };

beforeAll(async () => {
  t = await createTestDatabase(4);
  client = new ReplicateClient({ baseUrl: await fake.start(), timeoutMs: 5000, retries: 0 });
  fake.pageSize = 15;
});
afterAll(async () => {
  await fake.close();
  await t.drop();
});

async function syncAt(connectionId: string, token: string, now: Date, settings = SETTINGS) {
  let { checkpoint } = (await beginRun(t.db, connectionId, settings, now))!;
  while (!checkpoint.done) {
    for (const [id] of openWindows(checkpoint)) {
      const outcome = await runSlice(t.db, client, token, connectionId, checkpoint, id, { sliceMs: 10_000, parallelism: 2 });
      if (outcome.applied) checkpoint = outcome.checkpoint;
    }
  }
  await completeRun(t.db, connectionId, checkpoint, done);
}

let seq = 0;
test("pruning never changes a total and a re-read never counts a pruned prediction twice", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          minute: fc.integer({ min: 0, max: 40 * 24 * 60 }),
          finishesAfterDays: fc.integer({ min: 0, max: 4 }),
          status: fc.constantFrom("succeeded", "failed", "canceled", "aborted"),
          predictMicros: fc.integer({ min: 0, max: 9_000_000 }),
        }),
        { minLength: 1, maxLength: 120 },
      ),
      fc.array(fc.boolean(), { minLength: 46, maxLength: 46 }),
      async (specs, pruneOnDay) => {
        const token = `r8_prune${++seq}`;
        const { id: connectionId } = await t.db.connection.create({ data: { workspaceId: "ws-prune", status: "connected" } });
        const stateAt = (now: number): FakePrediction[] =>
          specs.map((s, i) => {
            const created = START + s.minute * 60_000;
            const finished = now >= created + s.finishesAfterDays * DAY;
            return {
              id: `pr${seq}-${i}`,
              status: finished ? s.status : "processing",
              created_at: new Date(created).toISOString(),
              model: "a/one",
              source: "api",
              metrics: finished ? { predict_time: s.predictMicros / 1e6 } : null,
            };
          });
        fake.addAccount(token, { type: "user", username: "p" }, []);
        let most = 0;
        for (let day = 0; day < 46; day++) {
          const now = START + day * DAY + 12 * 3_600_000;
          fake.upsertPredictions(token, stateAt(now));
          await syncAt(connectionId, token, new Date(now));
          if (pruneOnDay[day]) await pruneStep(t.db, SETTINGS.backfillDays, new Date(now));
          most = Math.max(most, await t.db.predictionRecord.count({ where: { connectionId } }));
        }
        const last = START + 45 * DAY + 12 * 3_600_000;
        const truth = stateAt(last);
        expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(truth));
        // A run reading everything it may (the whole backfill window) after the prunes changes nothing.
        fake.upsertPredictions(token, truth);
        await syncAt(connectionId, token, new Date(last + 3_600_000), { backfillDays: 10, lookbackHours: 24 * 365 });
        expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(truth));
        // Bounded by the window: after a prune, nothing older than the window and its margin is left but unfinished ones.
        if (pruneOnDay[45]) {
          const cutoff = new Date(last - (SETTINGS.backfillDays + PRUNE_MARGIN_DAYS) * DAY);
          const old = await t.db.predictionRecord.count({
            where: { connectionId, createdAt: { lt: cutoff }, status: { not: "processing" } },
          });
          expect(old).toBe(0);
        }
        expect(most).toBeLessThanOrEqual(specs.length);
        fake.removeToken(token);
      },
    ),
    { numRuns: 8 },
  );
}, 300_000);
