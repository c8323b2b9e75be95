import { ReplicateClient } from "../../src/replicate/client.js";
import { completeRun } from "../../src/repositories/runs.js";
import { openWindows } from "../../src/domain/checkpoint.js";
import { beginRun, runSlice } from "../../src/sync/run.js";
import { FakeReplicate } from "../../dev/fake-replicate.js";
import { captureLogs, dumpDatabase } from "../support/leaks.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";
import { actualUsage, expectedUsage, generatePredictions } from "../../dev/predictions.js";

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

test("inputs, outputs, logs, error text and urls reach no table and no log line", async () => {
  const predictions = generatePredictions({ count: 320, days: 20, marker: MARKER });
  fake.addAccount("r8_metadataOnly", { type: "user", username: "m" }, predictions);
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
    expect(await completeRun(t.db, id, checkpoint, () => done)).toMatchObject({ pages: 4, predictions: 320 });
  } finally {
    logs.stop();
  }
  expect(await actualUsage(t.db, id)).toEqual(expectedUsage(predictions));
  const everything = await dumpDatabase(t.url);
  expect(everything).toContain("stability-ai/sdxl"); // the dump does see the data...
  expect(everything).not.toContain(MARKER); // ...but no user content
  expect(everything).not.toContain("replicate.delivery");
  expect(logs.lines.join("\n")).not.toContain(MARKER);
});
