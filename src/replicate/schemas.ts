import { z } from "zod";

// Only metadata is kept: zod objects strip unnamed fields, so input, output, logs, error text and urls are dropped at parse time.

// Each prediction is checked and normalised on its own before it reaches SQL: an odd record is skipped (a record_rejected event),
// not its whole page. Bounds keep values inside what Postgres takes: btree keys under 2,700 bytes, numeric(20,6), its timestamps.
export const RECORD_LIMITS = {
  /** Longer ids are rejected: an id cut short could merge two predictions. */
  idChars: 128,
  /** model, version, deployment, source and status: longer text is cut (the usage still counts). */
  textChars: 256,
  /** predict_time / total_time above 30 days are impossible for one prediction: the record is rejected. */
  maxSeconds: 30 * 86_400,
  earliest: Date.UTC(2000, 0, 1),
  latest: Date.UTC(2100, 0, 1),
} as const;

// NUL is the one character Postgres text cannot hold; a cut must not leave half a surrogate pair.
const withoutNul = (s: string) => s.replaceAll("\u0000", "");
const cut = (s: string, max: number) => (s.length <= max ? s : s.slice(0, max).replace(/[\uD800-\uDBFF]$/, ""));
const text = z.string().transform((s) => cut(withoutNul(s), RECORD_LIMITS.textChars));
/** Absent or null: null. */
const orNull = <S extends z.ZodType>(schema: S) => schema.nullish().transform((v) => v ?? null);

const timestamp = z.iso
  .datetime({ offset: true })
  .transform((s) => new Date(s))
  .refine((d) => d.getTime() >= RECORD_LIMITS.earliest && d.getTime() < RECORD_LIMITS.latest, "outside the years 2000 to 2099");
const optionalText = orNull(text);
const seconds = orNull(z.number().finite().nonnegative().max(RECORD_LIMITS.maxSeconds));
// A token count of an unexpected shape is dropped rather than failing the whole page.
const tokenCount = orNull(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)).catch(null);

export const predictionSchema = z.object({
  id: z.string().transform(withoutNul).pipe(z.string().min(1).max(RECORD_LIMITS.idChars)),
  // Replicate may add statuses; unknown ones are kept and counted as "other".
  status: text.pipe(z.string().trim().min(1)),
  created_at: timestamp,
  model: optionalText,
  version: optionalText,
  deployment: optionalText,
  source: optionalText,
  started_at: orNull(timestamp),
  completed_at: orNull(timestamp),
  // Whether Replicate has deleted the inputs and outputs (a flag; the data itself is never read).
  data_removed: orNull(z.boolean()),
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

/** A prediction that could not be kept: its id (bounded, as text) and why, never its content. */
export interface RejectedRecord {
  id: string;
  reason: string;
}

function rejectedId(raw: unknown): string {
  const id = (raw as { id?: unknown } | null)?.id;
  if (typeof id !== "string" && typeof id !== "number") return "(no id)";
  const clean = String(id).replace(/[\u0000-\u001f\u007f]/g, "");
  return clean.length > RECORD_LIMITS.idChars ? `${cut(clean, RECORD_LIMITS.idChars)}…` : clean || "(no id)";
}

/** Keeps the records that pass `schema` (predictionSchema unless said); names the others. */
export function splitRecords<S extends z.ZodType = typeof predictionSchema>(
  records: unknown[],
  schema: S = predictionSchema as unknown as S,
): { results: z.output<S>[]; rejected: RejectedRecord[] } {
  const results: z.output<S>[] = [];
  const rejected: RejectedRecord[] = [];
  for (const record of records) {
    const parsed = schema.safeParse(record);
    if (parsed.success) results.push(parsed.data);
    // Issue paths and zod's own messages only: values could be user content.
    else rejected.push({ id: rejectedId(record), reason: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  }
  return { results, rejected };
}

/** A page of records: its own shape is strict (a broken page is retried); its records are checked one by one. */
const pageOf = <S extends z.ZodType>(record: S) =>
  z
    .object({ next: orNull(z.string()), previous: orNull(z.string()), results: z.array(z.unknown()) })
    .transform(({ results, ...links }) => ({ ...links, ...splitRecords(results, record) }));

export const predictionPageSchema = pageOf(predictionSchema);

export type PredictionPage = z.output<typeof predictionPageSchema>;

/** A training keeps a prediction's metadata, tagged with its kind (ids may repeat across kinds); trainings use no deployment. */
const trainingSchema = predictionSchema.transform((t) => ({ ...t, deployment: null, kind: "training" as const }));

export const trainingPageSchema = pageOf(trainingSchema);

export type TrainingPage = z.output<typeof trainingPageSchema>;

/** A page the sync writes: predictions, or trainings (each tagged with its kind). */
export type UsagePage = PredictionPage | TrainingPage;

export const accountSchema = z.object({
  type: z.enum(["user", "organization"]),
  username: z.string().min(1),
  name: optionalText,
  github_url: optionalText,
});

export type Account = z.output<typeof accountSchema>;

/** Problem-details error body; every field optional because proxies answer with anything. */
export const problemSchema = z.object({ title: z.string().optional(), detail: z.string().optional() }).partial();

/** A deployment and the configuration of its current release (hardware SKU and instance bounds). */
export const deploymentSchema = z.object({
  owner: z.string().min(1),
  name: z.string().min(1),
  current_release: orNull(
    z.object({
      number: z.number().int(),
      model: z.string().min(1),
      version: z.string().min(1),
      created_at: timestamp,
      configuration: z.object({
        hardware: z.string().min(1),
        min_instances: z.number().int().nonnegative(),
        max_instances: z.number().int().nonnegative(),
      }),
    }),
  ),
});

export type Deployment = z.output<typeof deploymentSchema>;

export const deploymentPageSchema = z.object({ next: optionalText, results: z.array(deploymentSchema) });

export type DeploymentPage = z.output<typeof deploymentPageSchema>;
