import type { Db } from "../src/db/client.js";
import type { FakePrediction, FakeTraining } from "./fake-replicate.js";

/** Small seeded PRNG so generated data sets are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MODELS = ["stability-ai/sdxl", "meta/meta-llama-3-70b-instruct", "black-forest-labs/flux-schnell", "openai/whisper"];
const DEPLOYMENTS = ["acme/sdxl-prod"];
/** Replicate's official language models report token counts in their metrics. */
const TOKEN_MODELS = ["meta/meta-llama-3-70b-instruct"];
const STATUSES = ["succeeded", "succeeded", "succeeded", "succeeded", "failed", "canceled", "aborted", "processing", "starting"];
/** Fine-tunes: what a training reports as its model is the trainer it ran. */
const TRAINER_MODELS = ["ostris/flux-dev-lora-trainer", "replicate/fast-flux-trainer", "stability-ai/sdxl"];
const TRAINING_STATUSES = ["succeeded", "succeeded", "succeeded", "failed", "canceled", "processing", "starting"];

export interface GenerateOptions {
  count: number;
  seed?: number;
  /** Records spread evenly over the `days` days before `end`. */
  days?: number;
  end?: Date;
  idPrefix?: string;
  /** A marker placed in every input, output, logs and error. */
  marker?: string;
  /** The one model the deployment serves (by default a deployment prediction draws any model). */
  deploymentModel?: string;
  /** Only predictions created this recently before `end` can still be starting/processing; older ones succeeded. */
  inFlightWithinMs?: number;
}

const IN_FLIGHT = new Set(["starting", "processing"]);

/** Draws each record's creation time and status first (one older than inFlightWithinMs has finished); `next` draws the rest. */
function drawRecords(o: GenerateOptions, statuses: string[]) {
  const next = rng(o.seed ?? 1);
  const end = (o.end ?? new Date()).getTime();
  const span = (o.days ?? 30) * 86_400_000;
  const draw = () => {
    const created = new Date(end - 1 - Math.floor(next() * span));
    const drawn = statuses[Math.floor(next() * statuses.length)]!;
    const stale = o.inFlightWithinMs !== undefined && end - created.getTime() > o.inFlightWithinMs;
    return { created, status: stale && IN_FLIGHT.has(drawn) ? "succeeded" : drawn };
  };
  return { next, draw, marker: o.marker ?? "" };
}

/** Realistic prediction objects: several models, one deployment, every status, some without metrics. */
export function generatePredictions(o: GenerateOptions): FakePrediction[] {
  const { next, draw, marker } = drawRecords(o, STATUSES);
  return Array.from({ length: o.count }, (_, i) => {
    const { created, status } = draw();
    const viaDeployment = next() < 0.2;
    const metered = status !== "starting" && next() < 0.85;
    const predictTime = Math.round(next() * 30_000_000) / 1_000_000;
    const model = MODELS[Math.floor(next() * MODELS.length)]!;
    return {
      id: `${o.idPrefix ?? "p"}${i.toString(36).padStart(6, "0")}`,
      status,
      created_at: created.toISOString(),
      model: viaDeployment && o.deploymentModel ? o.deploymentModel : model,
      version: next() < 0.1 ? "hidden" : `v${Math.floor(next() * 1e6).toString(16)}`,
      deployment: viaDeployment ? DEPLOYMENTS[0]! : null,
      source: next() < 0.7 ? "api" : "web",
      started_at: status === "starting" ? null : new Date(created.getTime() + 500).toISOString(),
      completed_at: ["succeeded", "failed", "canceled", "aborted"].includes(status)
        ? new Date(created.getTime() + 5000).toISOString()
        : null,
      metrics: metered ? { predict_time: predictTime, total_time: predictTime + 0.5, ...tokenMetrics(model, predictTime) } : null,
      input: { prompt: `a watercolor fox ${marker}` },
      output: [`https://replicate.delivery/${marker}/out.png`],
      logs: `step 1/50 ${marker}`,
      error: status === "failed" ? `CUDA out of memory ${marker}` : null,
      urls: { get: `https://api.replicate.com/v1/predictions/${i}`, cancel: `https://api.replicate.com/v1/predictions/${i}/cancel` },
    };
  });
}

/**
 * Realistic training objects (fine-tunes): a few trainer models, every status, one to sixty minutes
 * of compute, and the input (training images), output (weights) and logs that must never be kept.
 */
export function generateTrainings(o: GenerateOptions): FakeTraining[] {
  const { next, draw, marker } = drawRecords(o, TRAINING_STATUSES);
  return Array.from({ length: o.count }, (_, i) => {
    const { created, status } = draw();
    const predictTime = Math.round((60 + next() * 3540) * 1_000_000) / 1_000_000;
    const id = `${o.idPrefix ?? "t"}${i.toString(36).padStart(6, "0")}`;
    const finished = !IN_FLIGHT.has(status);
    return {
      id,
      status,
      created_at: created.toISOString(),
      model: TRAINER_MODELS[Math.floor(next() * TRAINER_MODELS.length)]!,
      version: `v${Math.floor(next() * 1e6).toString(16)}`,
      source: next() < 0.8 ? "api" : "web",
      started_at: status === "starting" ? null : new Date(created.getTime() + 2000).toISOString(),
      completed_at: finished ? new Date(created.getTime() + 2000 + predictTime * 1000).toISOString() : null,
      metrics: finished ? { predict_time: predictTime, total_time: predictTime + 2 } : null,
      input: { input_images: `https://example.com/${marker}/faces.zip`, trigger_word: `TOK ${marker}` },
      output:
        status === "succeeded" ? { version: `acme/lora:${marker}`, weights: `https://replicate.delivery/${marker}/weights.tar` } : null,
      logs: `flux_train_replicate: step 1000/1000 ${marker}`,
      error: status === "failed" ? `training failed: ${marker}` : null,
      urls: { get: `https://api.replicate.com/v1/trainings/${id}`, cancel: `https://api.replicate.com/v1/trainings/${id}/cancel` },
    };
  });
}

// Derived from predict_time rather than drawn from the PRNG, so every other field stays as before.
function tokenMetrics(model: string, predictTime: number) {
  if (!TOKEN_MODELS.includes(model)) return {};
  return { input_token_count: 20 + Math.floor(predictTime * 7), output_token_count: Math.floor(predictTime * 31) };
}

export interface UsageRow {
  /** Start of the UTC quarter hour (ISO), or of the UTC day for a whole-day row. */
  bucketStart: string;
  bucketMinutes: number;
  kind: string;
  model: string;
  deployment: string;
  source: string;
  predictions: number;
  succeeded: number;
  failed: number;
  canceled: number;
  aborted: number;
  inProgress: number;
  other: number;
  computeMicros: number;
  meteredPredictions: number;
  /** predict_time of predictions not aborted. */
  billableMicros: number;
  inputTokens: number;
  outputTokens: number;
}

const micros = (seconds: number | null | undefined) => (seconds == null ? 0 : Math.round(seconds * 1_000_000));

const QUARTER_HOUR_MS = 15 * 60_000;
/** The UTC quarter hour an instant falls in, as ISO. */
const quarterHour = (iso: string) => new Date(Math.floor(Date.parse(iso) / QUARTER_HOUR_MS) * QUARTER_HOUR_MS).toISOString();

/**
 * What usage must hold: a GROUP BY over the distinct final predictions (or trainings, with their
 * kind) per UTC quarter hour, computed independently in JS.
 */
export function expectedUsage(predictions: (FakePrediction & { kind?: string })[]): UsageRow[] {
  const groups = new Map<string, UsageRow>();
  for (const p of predictions) {
    const row: UsageRow = {
      bucketStart: quarterHour(p.created_at),
      bucketMinutes: 15,
      kind: p.kind ?? "prediction",
      model: p.model ?? "",
      deployment: p.deployment ?? "",
      source: p.source ?? "",
      predictions: 0,
      succeeded: 0,
      failed: 0,
      canceled: 0,
      aborted: 0,
      inProgress: 0,
      other: 0,
      computeMicros: 0,
      meteredPredictions: 0,
      billableMicros: 0,
      inputTokens: 0,
      outputTokens: 0,
    };
    const key = rowKey(row);
    const g = groups.get(key) ?? (groups.set(key, row), row);
    g.predictions++;
    if (p.status === "succeeded" || p.status === "failed" || p.status === "canceled" || p.status === "aborted") g[p.status]++;
    else if (p.status === "starting" || p.status === "processing") g.inProgress++;
    else g.other++;
    if (p.metrics?.predict_time != null) {
      g.computeMicros += micros(p.metrics.predict_time);
      g.meteredPredictions++;
    }
    if (p.status !== "aborted") {
      g.billableMicros += micros(p.metrics?.predict_time);
      g.inputTokens += p.metrics?.input_token_count ?? 0;
      g.outputTokens += p.metrics?.output_token_count ?? 0;
    }
  }
  return sortRows([...groups.values()]);
}

export async function actualUsage(db: Db, connectionId: string): Promise<UsageRow[]> {
  const rows = await db.usageBucket.findMany({ where: { connectionId } });
  return sortRows(
    rows.map((r) => ({
      bucketStart: r.bucketStart.toISOString(),
      bucketMinutes: r.bucketMinutes,
      kind: r.kind,
      model: r.model,
      deployment: r.deployment,
      source: r.source,
      predictions: r.predictions,
      succeeded: r.succeeded,
      failed: r.failed,
      canceled: r.canceled,
      aborted: r.aborted,
      inProgress: r.inProgress,
      other: r.other,
      computeMicros: Math.round(Number(r.computeSeconds) * 1_000_000),
      meteredPredictions: r.meteredPredictions,
      billableMicros: Math.round(Number(r.billableSeconds) * 1_000_000),
      inputTokens: Number(r.inputTokens),
      outputTokens: Number(r.outputTokens),
    })),
  );
}

const rowKey = (r: UsageRow) => `${r.bucketStart}|${r.bucketMinutes}|${r.kind}|${r.model}|${r.deployment}|${r.source}`;

function sortRows(rows: UsageRow[]): UsageRow[] {
  return rows.sort((a, b) => rowKey(a).localeCompare(rowKey(b)));
}
