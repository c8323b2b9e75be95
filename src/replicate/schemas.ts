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
  metrics: z
    .object({ predict_time: seconds, total_time: seconds })
    .nullish()
    .transform((m) => ({ predictTime: m?.predict_time ?? null, totalTime: m?.total_time ?? null })),
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
