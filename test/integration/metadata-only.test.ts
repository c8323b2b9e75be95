import * as producer from "../../src/producer.js";
import { ReplicateClient } from "../../src/replicate/client.js";
import { completeRun } from "../../src/repositories/runs.js";
import { openWindows } from "../../src/domain/checkpoint.js";
import { beginRun, runSlice } from "../../src/sync/run.js";
import { FakeReplicate, type FakeTraining } from "../../dev/fake-replicate.js";
import { captureLogs, dumpDatabase } from "../support/leaks.js";
import { createHarness } from "../support/harness.js";
import { dumpRedis } from "../support/redis.js";
import { waitForSyncedSince } from "../support/sync-checks.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";
import { actualUsage, expectedUsage, generatePredictions, generateTrainings } from "../../dev/predictions.js";

const MARKER = "ZZ-USER-CONTENT-7f3a9c";
let t: TestDatabase;
const fake = new FakeReplicate();

beforeAll(async () => {
  t = await createTestDatabase(2);
  await fake.start();
});
afterAll(async () => {
  await fake.close();
  await t.drop();
});

const asTrainings = (list: FakeTraining[]) => list.map((x) => ({ ...x, kind: "training" }));
const createdSince = (windowStart: string) => (x: FakeTraining) => Date.parse(x.created_at) >= Date.parse(windowStart);

test("inputs, outputs, logs, error text and urls reach no table and no log line", async () => {
  const predictions = generatePredictions({ count: 320, days: 20, marker: MARKER });
  // Over 40 days: the backfill reads the last 30.
  const trainings = generateTrainings({ count: 140, days: 40, marker: MARKER, seed: 4 });
  fake.addAccount("r8_metadataOnly", { type: "user", username: "m" }, predictions, trainings);
  const client = new ReplicateClient({ baseUrl: fake.baseUrl, timeoutMs: 5000 });
  const { id } = await t.db.connection.create({ data: { workspaceId: "ws", status: "connected" } });
  const logs = captureLogs();
  try {
    let checkpoint = (await beginRun(t.db, id, { backfillDays: 30, lookbackHours: 1 }))!.checkpoint;
    for (const [window] of openWindows(checkpoint)) {
      const outcome = await runSlice(t.db, client, "r8_metadataOnly", id, checkpoint, window, { sliceMs: 60_000, parallelism: 1 });
      if (outcome.applied) checkpoint = outcome.checkpoint;
    }
    const done = { kind: "sync_completed" as const, level: "info" as const, message: "done" };
    const read = trainings.filter(createdSince(checkpoint.windowStart));
    expect(await completeRun(t.db, id, checkpoint, done)).toEqual({ requested: false });
    expect(checkpoint).toMatchObject({ pagesDone: 4, predictionsSeen: 320, trainingsSeen: read.length });
    expect(await actualUsage(t.db, id)).toEqual(expectedUsage([...predictions, ...asTrainings(read)]));
  } finally {
    logs.stop();
  }
  const everything = await dumpDatabase(t.url);
  expect(everything).toContain("stability-ai/sdxl"); // the dump does see the data...
  expect(everything).toContain("ostris/flux-dev-lora-trainer");
  expect(everything).not.toContain(MARKER); // ...but no user content
  expect(everything).not.toContain("replicate.delivery");
  expect(logs.lines.join("\n")).not.toContain(MARKER);
});

test("a training's input, output, logs and error reach no table, no Redis key or value and no log line, through the jobs and their failures", async () => {
  const h = await createHarness();
  const logs = captureLogs();
  try {
    const token = "r8_metadataOnlyTrainings000000";
    const trainings = generateTrainings({ count: 150, days: 120, marker: MARKER, seed: 9 });
    // A record that cannot be kept, its content named nowhere: only its id and the reason.
    const unreadable = { ...trainings[0]!, id: "bad-training", created_at: "not a date", input: { secret: MARKER } };
    h.fake.addAccount(token, { type: "organization", username: "m" }, generatePredictions({ count: 40, marker: MARKER }), [
      ...trainings,
      unreadable,
    ]);
    // A page cut short (its half holds the content) is retried: its error, event and log quote no body.
    h.fake.inject(token, "trainings", { kind: "truncated-json" });
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-metadata", token });
    await waitForSyncedSince(h, id, null);
    const started = await h.ctx.db.integrationEvent.findFirstOrThrow({ where: { connectionId: id, kind: "sync_started" } });
    const read = trainings.filter(createdSince((started.detail as { windowStart: string }).windowStart));
    expect(await h.ctx.db.predictionRecord.count({ where: { connectionId: id, kind: "training" } })).toBe(read.length);
    const kinds = (await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id } })).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(["provider_error", "record_rejected", "sync_completed"]));

    const places = {
      postgres: await dumpDatabase(h.t.url),
      redis: await dumpRedis(h.ctx.redis, h.config.queuePrefix),
      logs: logs.lines.join("\n"),
    };
    expect(places.postgres).toContain("bad-training");
    expect(places.redis).toContain(id); // the dumps do see the sync's keys...
    for (const [place, text] of Object.entries(places)) {
      for (const content of [MARKER, "replicate.delivery", "input_images", "trigger_word", "weights.tar", "flux_train_replicate"]) {
        expect(`${place}: ${text.includes(content) ? content : "clean"}`).toBe(`${place}: clean`); // ...but no user content
      }
    }
  } finally {
    logs.stop();
    await h.close();
  }
});
