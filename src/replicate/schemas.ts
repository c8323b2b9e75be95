import { z } from "zod";

// Only metadata is kept: zod objects strip every field not named here, so input, output, logs,
// error text and urls are dropped the moment a response is parsed.

const timestamp = z.iso.datetime({ offset: true }).transform((s) => new Date(s));
const optionalText = z
  .string()
  .nullish()
  .transform((v) => v ?? null);
const seconds = z
  .number()
  .finite()
  .nonnegative()
  .nullish()
  .transform((v) => v ?? null);
// A token count of an unexpected shape is dropped rather than failing the whole page.
const tokenCount = z
  .number()
  .int()
  .nonnegative()
  .max(Number.MAX_SAFE_INTEGER)
  .nullish()
  .catch(null)
  .transform((v) => v ?? null);

export const predictionSchema = z.object({
  id: z.string().min(1),
  // Replicate may add statuses; unknown ones are kept and counted as "other".
  status: z.string().min(1),
  created_at: timestamp,
  model: optionalText,
  version: optionalText,
  deployment: optionalText,
  source: optionalText,
  started_at: timestamp.nullish().transform((v) => v ?? null),
  completed_at: timestamp.nullish().transform((v) => v ?? null),
  // Whether Replicate has deleted the inputs and outputs (a flag; the data itself is never read).
  data_removed: z
    .boolean()
    .nullish()
    .transform((v) => v ?? null),
  // Token counts are reported by Replicate's official language models; other numeric metrics are ignored.
  metrics: z
    .object({ predict_time: seconds, total_time: seconds, input_token_count: tokenCount, output_token_count: tokenCount })
    .nullish()
    .transform((m) => ({
      predictTime: m?.predict_time ?? null,
      totalTime: m?.total_time ?? null,
      inputTokens: m?.input_token_count ?? null,
      outputTokens: m?.output_token_count ?? null,
    })),
});

export type Prediction = z.output<typeof predictionSchema>;

export const predictionPageSchema = z.object({
  next: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
  previous: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
  results: z.array(predictionSchema),
});

export type PredictionPage = z.output<typeof predictionPageSchema>;

export const accountSchema = z.object({
  type: z.enum(["user", "organization"]),
  username: z.string().min(1),
  name: optionalText,
  github_url: optionalText,
});

export type Account = z.output<typeof accountSchema>;

/** Problem-details error body; every field optional because proxies answer with anything. */
export const problemSchema = z.object({ title: z.string().optional(), detail: z.string().optional() }).partial();

export const TERMINAL_STATUSES = ["succeeded", "failed", "canceled", "aborted"] as const;
export const IN_PROGRESS_STATUSES = ["starting", "processing"] as const;

/** A deployment and the configuration of its current release (hardware SKU and instance bounds). */
export const deploymentSchema = z.object({
  owner: z.string().min(1),
  name: z.string().min(1),
  current_release: z
    .object({
      number: z.number().int(),
      model: z.string().min(1),
      version: z.string().min(1),
      created_at: timestamp,
      configuration: z.object({
        hardware: z.string().min(1),
        min_instances: z.number().int().nonnegative(),
        max_instances: z.number().int().nonnegative(),
      }),
    })
    .nullish()
    .transform((v) => v ?? null),
});

export type Deployment = z.output<typeof deploymentSchema>;

export const deploymentPageSchema = z.object({ next: optionalText, results: z.array(deploymentSchema) });

export type DeploymentPage = z.output<typeof deploymentPageSchema>;
