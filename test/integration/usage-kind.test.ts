import { Decimal } from "decimal.js";
import type { Prediction } from "../../src/replicate/schemas.js";
import { predictionPageSchema } from "../../src/replicate/schemas.js";
import { createConnection } from "../../src/repositories/connections.js";
import type { UsageRecord } from "../../src/repositories/usage.js";
import { applyPages } from "../../src/sync/engine.js";
import { beginRun } from "../../src/sync/run.js";
import type { Checkpoint } from "../../src/domain/checkpoint.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { actualUsage, expectedUsage } from "../../dev/predictions.js";
import { withApi } from "../support/api.js";

// The kind dimension: the write takes each record's kind, so trainings (read by the sync from GET
// /v1/trainings) go through the same fenced ledger/usage write as predictions. A prediction and a
// training never share a ledger row, whatever their ids; usage splits by kind (groupBy=kind, CSV);
// a training is priced like a prediction of its model (the hardware an operator maps it to).

const started = withApi();
const HOUR = 3_600_000;
const now = Date.now();
const day = new Date(now - 3 * 24 * HOUR).toISOString().slice(0, 10);
const at = (hours: number) => new Date(Date.parse(`${day}T00:00:00Z`) + hours * HOUR).toISOString();

const record = (id: string, status: string, created: string, model: string, predictTime: number | null): FakePrediction => ({
  id,
  status,
  created_at: created,
  model,
  source: "api",
  metrics: predictTime === null ? null : { predict_time: predictTime },
});
const parse = (records: FakePrediction[]): Prediction[] => predictionPageSchema.parse({ next: null, results: records }).results;
const training = (p: Prediction): UsageRecord => ({ ...p, kind: "training" });

let connectionId: string;
let checkpoint: Checkpoint;
let windowId: string;

/** Writes one page of records through the service's fenced write (the path the sync uses). */
async function write(records: UsageRecord[]): Promise<void> {
  const outcome = await applyPages(
    started.h.ctx.db,
    connectionId,
    checkpoint,
    windowId,
    [{ next: "more", results: records, rejected: [] }],
    { parallelism: 1 },
  );
  if (!outcome.applied) throw new Error(`page not applied: ${outcome.reason}`);
  checkpoint = outcome.checkpoint;
}

const predictions = [record("r1", "succeeded", at(1), "acme/sdxl", 10), record("r2", "failed", at(2.2), "acme/sdxl", 4)];
// Same ids as the predictions: Replicate's ids are unique per kind only.
const trainingsThen = [
  record("r1", "processing", at(1.1), "ostris/flux-dev-lora-trainer", null),
  record("t2", "starting", at(5), "acme/unmapped-trainer", null),
];
const trainingsNow = [
  record("r1", "succeeded", at(1.1), "ostris/flux-dev-lora-trainer", 1200.5),
  record("t2", "failed", at(5), "acme/unmapped-trainer", 30),
];

beforeAll(async () => {
  const { db, vault, config } = started.h.ctx;
  ({ id: connectionId } = await createConnection(db, vault, "ws-kind", "r8_kindToken000000000000"));
  await db.connection.update({ where: { id: connectionId }, data: { status: "connected" } });
  ({ checkpoint } = (await beginRun(db, connectionId, config.sync))!);
  windowId = Object.keys(checkpoint.windows)[0]!;
  const price = await started.api.call("POST", "/v1/prices/model-hardware", {
    model: "ostris/flux-dev-lora-trainer",
    sku: "gpu-h100",
    effectiveFrom: "2025-01-01",
    source: "test: the trainer's hardware",
  });
  expect(price.status).toBe(201);
});

test("a prediction and a training with the same id are two ledger rows and two usage kinds; a training moving on counts once", async () => {
  await write([...parse(predictions), ...parse(trainingsThen).map(training)]);
  const ledger = await started.h.ctx.db.predictionRecord.findMany({
    where: { connectionId },
    orderBy: [{ kind: "asc" }, { predictionId: "asc" }],
  });
  expect(ledger.map((r) => [r.kind, r.predictionId, r.status])).toEqual([
    ["prediction", "r1", "succeeded"],
    ["prediction", "r2", "failed"],
    ["training", "r1", "processing"],
    ["training", "t2", "starting"],
  ]);
  const truth = (list: FakePrediction[]) => [...predictions, ...list.map((t) => ({ ...t, kind: "training" }))];
  expect(await actualUsage(started.h.ctx.db, connectionId)).toEqual(expectedUsage(truth(trainingsThen)));

  // The trainings finish (a later page, and the same page again): usage moves by exactly what changed.
  await write(parse(trainingsNow).map(training));
  await write(parse(trainingsNow).map(training));
  expect(await actualUsage(started.h.ctx.db, connectionId)).toEqual(expectedUsage(truth(trainingsNow)));
});

test("groupBy=kind splits usage; a training is priced by its model's hardware, an unmapped one is unpriced", async () => {
  const { status, body } = await started.api.call("GET", `/v1/usage?connectionId=${connectionId}&from=${day}&to=${day}&groupBy=kind,model`);
  expect(status).toBe(200);
  const rows = Object.fromEntries(body.rows.map((r: { kind: string; model: string }) => [`${r.kind} ${r.model}`, r]));
  expect(Object.keys(rows).sort()).toEqual([
    "prediction acme/sdxl",
    "training acme/unmapped-trainer",
    "training ostris/flux-dev-lora-trainer",
  ]);
  expect(rows["training ostris/flux-dev-lora-trainer"]).toMatchObject({
    predictions: 1,
    succeeded: 1,
    computeSeconds: 1200.5,
    billableSeconds: 1200.5,
    costBasis: "hardware_seconds",
    // gpu-h100 at its seeded published price.
    estimatedCostUsd: new Decimal("1200.5").times("0.001525").toString(),
    pricedShare: "1",
  });
  expect(rows["training acme/unmapped-trainer"]).toMatchObject({ predictions: 1, failed: 1, costBasis: "unpriced", estimatedCostUsd: "0" });
  expect(rows["prediction acme/sdxl"]).toMatchObject({ predictions: 2, costBasis: "unpriced" });

  const byKind = await started.api.call("GET", `/v1/usage?connectionId=${connectionId}&from=${day}&to=${day}&groupBy=kind,status`);
  expect(byKind.body.rows.map((r: { kind: string; status: string; predictions: number }) => [r.kind, r.status, r.predictions])).toEqual([
    ["prediction", "failed", 1],
    ["prediction", "succeeded", 1],
    ["training", "failed", 1],
    ["training", "succeeded", 1],
  ]);

  const csv = await started.api.call("GET", `/v1/usage?connectionId=${connectionId}&from=${day}&to=${day}&groupBy=date,kind&format=csv`);
  const [header, ...lines] = (csv.body as string).trim().split("\n");
  expect(header!.split(",").slice(0, 3)).toEqual(["line", "date", "kind"]);
  expect(lines.map((l) => l.split(",").slice(0, 4))).toEqual([
    ["usage", day, "prediction", "2"],
    ["usage", day, "training", "2"],
  ]);
});
