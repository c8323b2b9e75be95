import fc from "fast-check";
import { ReplicateClient } from "../../src/replicate/client.js";
import type { Prediction } from "../../src/replicate/schemas.js";
import { predictionSchema } from "../../src/replicate/schemas.js";
import { TRAININGS_WINDOW, newCheckpoint, openWindows, parseCheckpoint, type Checkpoint } from "../../src/domain/checkpoint.js";
import { applyPages } from "../../src/sync/engine.js";
import { completeRun } from "../../src/repositories/runs.js";
import { beginRun, runSlice } from "../../src/sync/run.js";
import { PagePrefetcher } from "../../src/sync/prefetch.js";
import { FakeReplicate, type FakePrediction } from "../../dev/fake-replicate.js";
import { actualUsage, expectedUsage, rng } from "../../dev/predictions.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";

// The numbers finance reads must equal a GROUP BY over the distinct final predictions (and trainings),
// whatever the page boundaries, duplicates, overlaps, replays, concurrency, crashes and status changes.

let t: TestDatabase;
const fake = new FakeReplicate();
let client: ReplicateClient;
const NOW = new Date("2026-06-15T12:00:00.000Z");
const SETTINGS = { backfillDays: 10, lookbackHours: 2 };

beforeAll(async () => {
  t = await createTestDatabase(8);
  client = new ReplicateClient({ baseUrl: await fake.start(), timeoutMs: 5000, retries: 0 });
});
afterAll(async () => {
  await fake.close();
  await t.drop();
});

let seq = 0;
async function newConnection(): Promise<string> {
  const run = newCheckpoint({ now: NOW, highWaterMark: null, oldestUnfinished: null, ...SETTINGS });
  const row = await t.db.connection.create({ data: { workspaceId: "ws-prop", status: "connected", syncState: run } });
  return row.id;
}

const FINAL = ["succeeded", "failed", "canceled", "aborted", "mystery_new_status"] as const;
const predictionArb = fc.record({
  minute: fc.integer({ min: 0, max: 7 * 24 * 60 }),
  model: fc.constantFrom("a/one", "b/two", "c/three", null),
  deployment: fc.constantFrom(null, null, "acme/prod"),
  finalStatus: fc.constantFrom(...FINAL),
  earlier: fc.constantFrom("none", "starting", "processing"),
  predictMicros: fc.option(fc.integer({ min: 0, max: 120_000_000 }), { nil: null }),
  source: fc.constantFrom("api", "web", null),
  tokens: fc.option(fc.tuple(fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 2_000_000 })), { nil: null }),
});

type Spec = typeof predictionArb extends fc.Arbitrary<infer T> ? T : never;

/** Trainings: no deployment, and some created before the backfill window (a run must drop those). */
const trainingArb = fc
  .tuple(predictionArb, fc.integer({ min: 0, max: 5 }))
  .map(([s, roll]): Spec => ({ ...s, deployment: null, minute: roll === 0 ? 11 * 24 * 60 + (s.minute % (24 * 60)) : s.minute }));
const inBackfill = (p: FakePrediction) => Date.parse(p.created_at) >= NOW.getTime() - SETTINGS.backfillDays * 86_400_000;
const asTraining = (p: FakePrediction) => ({ ...p, kind: "training" });

function build(specs: Spec[], id0: number) {
  return specs.map((s, i) => {
    const created = new Date(NOW.getTime() - 1000 - s.minute * 60_000).toISOString();
    const final: FakePrediction = {
      id: `q${id0 + i}`,
      status: s.finalStatus,
      created_at: created,
      model: s.model,
      deployment: s.deployment,
      source: s.source,
      metrics:
        s.predictMicros === null
          ? null
          : {
              predict_time: s.predictMicros / 1e6,
              total_time: s.predictMicros / 1e6 + 1,
              input_token_count: s.tokens?.[0] ?? null,
              output_token_count: s.tokens?.[1] ?? null,
            },
      input: { prompt: "x" },
    };
    const earlier: FakePrediction | null = s.earlier === "none" ? null : { ...final, status: s.earlier, metrics: null };
    return { final, earlier };
  });
}

const parse = (ps: FakePrediction[]): Prediction[] => ps.map((p) => predictionSchema.parse(p));

const completed = { kind: "sync_completed" as const, level: "info" as const, message: "done" };
/** The run's one window of predictions (beside it, the trainings window). */
const onlyWindow = (cp: Checkpoint) => Object.keys(cp.windows).find((id) => id !== TRAINING_ID)!;
const TRAINING_ID = TRAININGS_WINDOW;

/**
 * Writes a batch the way the engine does, as the next page of a never-ending run. Concurrent writers
 * race on the checkpoint fence; a loser re-reads the checkpoint and tries again, as a retried job would.
 */
async function writeBatch(connectionId: string, batch: Prediction[]) {
  for (;;) {
    const row = await t.db.connection.findUniqueOrThrow({ where: { id: connectionId } });
    const checkpoint = parseCheckpoint(row.syncState)!;
    const outcome = await applyPages(
      t.db,
      connectionId,
      checkpoint,
      onlyWindow(checkpoint),
      [{ next: "more", results: batch, rejected: [] }],
      { parallelism: 1 },
    );
    if (outcome.applied) return;
  }
}

test("ledger + daily deltas: random batches, duplicates, overlaps, replays and concurrent writers give exact totals", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(predictionArb, { minLength: 1, maxLength: 120 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      async (specs, cuts, seed) => {
        const connectionId = await newConnection();
        const items = build(specs, (seq += 1000));
        const random = rng(seed);
        const pick = (n: number) => Math.floor(random() * n);
        // Earlier states first (some batches may still race with final ones: ranks keep the final).
        const earlier = parse(items.flatMap((x) => (x.earlier ? [x.earlier] : [])));
        const final = parse(items.map((x) => x.final));
        const batches: Prediction[][] = [];
        for (const source of [earlier, final]) {
          let at = 0;
          for (let c = 0; at < source.length; c++) {
            const size = cuts[c % cuts.length]!;
            // Overlap: start a little before the previous cut now and then.
            const start = Math.max(0, at - (pick(3) === 0 ? pick(5) : 0));
            batches.push(source.slice(start, at + size));
            at += size;
          }
        }
        // Replays of random batches, then everything written by 3 concurrent writers.
        for (let r = pick(4); r > 0; r--) batches.push(batches[pick(batches.length)]!);
        const lanes: Prediction[][][] = [[], [], []];
        batches.forEach((b, i) => lanes[i < earlier.length ? 0 : pick(3)]!.push(b));
        for (const b of batches.slice(0, Math.ceil(batches.length / 2))) await writeBatch(connectionId, b);
        await Promise.all(
          lanes.map(async (lane) => {
            for (const b of lane) await writeBatch(connectionId, b);
          }),
        );
        // A page fetched before the predictions finished, written last: must not undo the final states.
        if (earlier.length > 0) await writeBatch(connectionId, earlier);
        expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(items.map((x) => x.final)));
      },
    ),
    { numRuns: 30 },
  );
});

test("runs over random window splits: page sizes, parallelism, concurrent windows, duplicate pages, crashes, double processing, status changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(predictionArb, { minLength: 0, maxLength: 150 }),
      fc.array(trainingArb, { minLength: 0, maxLength: 40 }),
      fc.integer({ min: 1, max: 30 }),
      fc.integer({ min: 1, max: 4 }),
      fc.array(
        fc.constantFrom(
          "ok",
          "ok",
          "ok",
          "parallel",
          "parallel",
          "crash-before-fetch",
          "crash-after-write",
          "double",
          "duplicate-page",
          "truncated",
        ),
        { minLength: 1, maxLength: 30 },
      ),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      async (specs, trainingSpecs, pageSize, parallelism, script, seed) => {
        const connectionId = await newConnection();
        const token = `r8_prop${(seq += 1000)}`;
        const items = build(specs, seq);
        // The same ids as the predictions: ids are unique per kind only.
        const trainings = build(trainingSpecs, seq);
        const random = rng(seed);
        // First run sees the earlier states of in-progress predictions; the second run sees the final ones.
        fake.addAccount(
          token,
          { type: "user", username: "u" },
          items.map((x) => x.earlier ?? x.final),
          trainings.map((x) => x.earlier ?? x.final),
        );
        const truth = (state: "earlier" | "final") => {
          const pick = (x: { earlier: FakePrediction | null; final: FakePrediction }) =>
            state === "earlier" ? (x.earlier ?? x.final) : x.final;
          return [...items.map(pick), ...trainings.map(pick).filter(inBackfill).map(asTraining)];
        };
        fake.pageSize = pageSize;
        // A slice of 0 ms writes what its first read brought (one or two pages), so windows interleave finely.
        const slice = (checkpoint: Checkpoint, id: string) =>
          runSlice(t.db, client, token, connectionId, checkpoint, id, { sliceMs: 0, parallelism });
        let step = 0;
        let most = 0;
        const runToEnd = async (now: Date) => {
          for (let guard = 0; guard < 1000; guard++) {
            const action = script[step++] ?? (random() < 0.5 ? "parallel" : "ok"); // the scripted faults, then plain pages
            const run = await beginRun(t.db, connectionId, SETTINGS, now);
            if (!run) throw new Error("connection not connected");
            const { checkpoint } = run;
            if (checkpoint.done) return (await completeRun(t.db, connectionId, checkpoint, completed)) ? checkpoint : null;
            const open = openWindows(checkpoint).map(([id]) => id);
            most = Math.max(most, open.filter((id) => id !== TRAINING_ID).length);
            const id = open[Math.floor(random() * open.length)]!;
            const endpoint = id === TRAINING_ID ? "trainings" : "predictions";
            if (action === "crash-before-fetch") continue; // the process died; the next attempt resumes
            if (action === "duplicate-page") fake.inject(token, endpoint, { kind: "duplicate-results" });
            if (action === "truncated") {
              fake.inject(token, endpoint, { kind: "truncated-json" });
              await expect(slice(checkpoint, id)).rejects.toThrow(/not valid JSON/);
              continue;
            }
            if (action === "double") {
              const outcomes = await Promise.all([slice(checkpoint, id), slice(checkpoint, id)]);
              expect(outcomes.filter((o) => o.applied)).toHaveLength(1);
              continue;
            }
            if (action === "parallel") {
              // Every open window at once, as several workers would: disjoint windows never block each other.
              const outcomes = await Promise.all(open.map((w) => slice(checkpoint, w)));
              expect(outcomes.every((o) => o.applied)).toBe(true);
              continue;
            }
            const outcome = await slice(checkpoint, id);
            expect(outcome.applied).toBe(true);
            if (action === "crash-after-write") {
              // The same pages again (a retried job): recognised as already applied, nothing written.
              const again = await applyPages(t.db, connectionId, checkpoint, id, [], { parallelism });
              expect(again).toMatchObject({ applied: false, reason: "already_applied" });
            }
          }
          throw new Error("run did not finish");
        };
        const first = await runToEnd(NOW);
        expect(first?.predictionsSeen).toBeGreaterThanOrEqual(items.length);
        expect(first?.trainingsSeen).toBe(
          new Set(
            truth("earlier")
              .filter((p) => "kind" in p)
              .map((p) => p.id),
          ).size,
        );
        expect(most).toBeLessThanOrEqual(parallelism);
        expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(truth("earlier")));

        // Between runs every in-progress prediction and training finishes; the next run's window reaches back to them.
        fake.upsertPredictions(
          token,
          items.map((x) => x.final),
        );
        fake.upsertTrainings(
          token,
          trainings.map((x) => x.final),
        );
        await runToEnd(new Date(NOW.getTime() + 3 * 3_600_000));
        expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(truth("final")));
        fake.removeToken(token);
      },
    ),
    { numRuns: 25 },
  );
});

/** 400 predictions over a week, 10 a page: a window that splits at its first page. */
function busyAccount(token: string, id0: number): FakePrediction[] {
  const predictions = build(
    Array.from({ length: 400 }, (_, i) => ({
      minute: (i * 37) % (7 * 24 * 60),
      model: "a/one",
      deployment: null,
      finalStatus: "succeeded" as const,
      earlier: "none" as const,
      predictMicros: 1000 + i,
      source: "api" as const,
      tokens: null,
    })),
    id0,
  ).map((x) => x.final);
  fake.addAccount(token, { type: "user", username: "u" }, predictions);
  fake.pageSize = 10;
  return predictions;
}

test("a busy window is split: its parts are read concurrently and the totals stay exact", async () => {
  const connectionId = await newConnection();
  const token = "r8_propSplit";
  const predictions = busyAccount(token, 900_000);
  let checkpoint = (await beginRun(t.db, connectionId, SETTINGS, NOW))!.checkpoint;
  let most = 1;
  while (!checkpoint.done) {
    const outcomes = await Promise.all(
      openWindows(checkpoint).map(([id]) => runSlice(t.db, client, token, connectionId, checkpoint, id, { sliceMs: 0, parallelism: 4 })),
    );
    checkpoint = (await beginRun(t.db, connectionId, SETTINGS, NOW))!.checkpoint;
    most = Math.max(most, outcomes.length, openWindows(checkpoint).length);
  }
  expect(most).toBe(4);
  expect(await completeRun(t.db, connectionId, checkpoint, completed)).toEqual({ requested: false });
  expect(checkpoint.predictionsSeen).toBe(400);
  expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage(predictions));
});

test("a slice ends at the write that splits its window: the parts split off start at once, and the next slice opens with the page fetched ahead", async () => {
  const connectionId = await newConnection();
  const token = "r8_propSplitEnds";
  busyAccount(token, 950_000);
  const { checkpoint } = (await beginRun(t.db, connectionId, SETTINGS, NOW))!;
  const [id] = openWindows(checkpoint).find(([w]) => w !== TRAININGS_WINDOW)!;
  const prefetcher = new PagePrefetcher(8);
  // A slice far longer than the whole read: without the split, it would read the window to its end.
  const settings = { sliceMs: 60_000, parallelism: 4, prefetcher };
  const slice = await runSlice(t.db, client, token, connectionId, checkpoint, id, settings);
  if (!slice.applied) throw new Error("slice not applied");
  expect(slice.newWindows.length).toBeGreaterThan(0);
  expect(slice.checkpoint.windows[id]!.done).toBe(false);
  expect(slice.pages).toBeLessThan(40);
  // The next slice opens with the page requested ahead for it: it is not requested again.
  const nextUrl = slice.checkpoint.windows[id]!.nextUrl!;
  const next = await runSlice(t.db, client, token, connectionId, slice.checkpoint, id, { ...settings, sliceMs: 0 });
  if (!next.applied) throw new Error("next slice not applied");
  expect(next.pages).toBeGreaterThan(0);
  expect(fake.requests.filter((r) => nextUrl.endsWith(r.url))).toHaveLength(1);
});

test("a prediction that moves to another model leaves its old group (deleted once empty)", async () => {
  const connectionId = await newConnection();
  const first: FakePrediction = {
    id: "moves",
    status: "processing",
    created_at: new Date(NOW.getTime() - 1000).toISOString(),
    model: "a/one",
    source: "api",
    metrics: { predict_time: 2, input_token_count: 5, output_token_count: 9 },
  };
  const moved: FakePrediction = { ...first, model: "a/two", source: "web", status: "succeeded" };
  await writeBatch(connectionId, parse([first]));
  await writeBatch(connectionId, parse([moved]));
  expect(await actualUsage(t.db, connectionId)).toEqual(expectedUsage([moved]));
});

test("a page for a disconnected connection writes nothing", async () => {
  const connectionId = await newConnection();
  const checkpoint = await beginRun(t.db, connectionId, SETTINGS, NOW);
  await t.db.connection.update({ where: { id: connectionId }, data: { status: "disconnected" } });
  const batch = parse(
    build(
      [
        {
          minute: 5,
          model: "a/one",
          deployment: null,
          finalStatus: "succeeded",
          earlier: "none",
          predictMicros: 1,
          source: "api",
          tokens: null,
        },
      ],
      0,
    ).map((x) => x.final),
  );
  const { checkpoint: cp } = checkpoint!;
  const outcome = await applyPages(t.db, connectionId, cp, onlyWindow(cp), [{ next: null, results: batch, rejected: [] }], {
    parallelism: 1,
  });
  expect(outcome).toMatchObject({ applied: false, reason: "not_connected" });
  expect(await t.db.predictionRecord.count({ where: { connectionId } })).toBe(0);
});
