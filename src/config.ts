import { z } from "zod";

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** `kid:base64key` pairs, comma separated; each key must decode to exactly 32 bytes. */
const keyring = z.string().transform((raw, ctx) => {
  const keys = new Map<string, Buffer>();
  for (const entry of raw.split(",").map((s) => s.trim())) {
    if (!entry) continue;
    const sep = entry.indexOf(":");
    const id = entry.slice(0, sep);
    const key = Buffer.from(entry.slice(sep + 1), "base64");
    if (sep < 1 || !KEY_ID.test(id)) {
      ctx.addIssue({ code: "custom", message: "each entry must be <keyId>:<base64 key> with keyId of [A-Za-z0-9_-]{1,32}" });
    } else if (key.length !== 32) {
      ctx.addIssue({ code: "custom", message: `key "${id}" must be 32 bytes of base64 (got ${key.length})` });
    } else if (keys.has(id)) {
      ctx.addIssue({ code: "custom", message: `key id "${id}" appears twice` });
    } else {
      keys.set(id, key);
    }
  }
  if (keys.size === 0) ctx.addIssue({ code: "custom", message: "at least one key is required" });
  return keys;
});

/** Standard Webhooks signing secret: `whsec_` then base64 of 24 to 64 random bytes. */
const webhookSecret = z
  .string()
  .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, { message: "must be whsec_ followed by base64 (a Standard Webhooks secret)", abort: true })
  .refine((s) => {
    const bytes = Buffer.from(s.slice("whsec_".length), "base64").length;
    return bytes >= 24 && bytes <= 64;
  }, "must encode 24 to 64 random bytes after whsec_");

/** Where webhooks go: http(s) only, and no credentials in the URL (the signature authenticates). */
const webhookUrl = z.url({ protocol: /^https?$/, message: "must be an http:// or https:// URL", abort: true }).refine((u) => {
  const url = new URL(u);
  return !url.username && !url.password;
}, "must not contain a user name or password (receivers verify the webhook-signature header)");

/** An HTTP credential the service checks (API_TOKEN, SUPPORT_TOKEN). */
const credential = z.string().min(24, "must be at least 24 characters");

const int = (min: number, fallback: number) => z.coerce.number().int().min(min).default(fallback);

/** The variables the in-process producer reads too (src/producer.ts): the stores and the queue settings it enqueues with. */
const sharedShape = {
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default("postgresql://postgres@127.0.0.1:5432/replicate_usage_sync"),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default("redis://127.0.0.1:6379"),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:-]+$/)
    .default("rus"),
  TOKEN_ENCRYPTION_KEY_ID: z.string().regex(KEY_ID).optional(),
  JOB_ATTEMPTS: int(1, 5),
  JOB_BACKOFF_MS: int(1, 2000),
  SYNC_INTERVAL_MINUTES: int(1, 60),
  BACKFILL_DAYS: int(1, 90),
  LOOKBACK_HOURS: int(0, 24),
  USAGE_QUERY_TIMEOUT_MS: int(1, 10_000),
};

const envShape = z.object({
  ...sharedShape,
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  ROLE: z.enum(["all", "api", "worker"]).default("all"),
  TOKEN_ENCRYPTION_KEYS: keyring,
  REPLICATE_API_BASE_URL: z.url({ protocol: /^https?$/ }).default("https://api.replicate.com/v1"),
  REPLICATE_TIMEOUT_MS: int(100, 30_000),
  REPLICATE_REQUESTS_PER_SECOND: int(1, 10),
  REPLICATE_MAX_RESPONSE_BYTES: int(1024, 16 * 2 ** 20),
  WORKER_CONCURRENCY: int(1, 16),
  BACKFILL_PARALLELISM: int(1, 4),
  SYNC_SLICE_MS: int(50, 2000),
  JOB_LOCK_MS: int(500, 30_000),
  RECONCILE_SECONDS: int(1, 60),
  ERASURE_BATCH_ROWS: int(1, 5000),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  LOG_LEVEL: z.enum(["error", "warn", "info", "http", "verbose", "debug", "silly"]).default("info"),
  API_TOKEN: credential,
  SUPPORT_TOKEN: credential,
  WEBHOOK_URL: webhookUrl.optional(),
  WEBHOOK_SECRET: webhookSecret.optional(),
});

/** Every environment variable the service reads. */
export const CONFIG_VARIABLES = Object.keys(envShape.shape);

function checkKeyId(env: { TOKEN_ENCRYPTION_KEYS?: Map<string, Buffer>; TOKEN_ENCRYPTION_KEY_ID?: string }, ctx: z.RefinementCtx): void {
  const current = env.TOKEN_ENCRYPTION_KEY_ID;
  if (current && env.TOKEN_ENCRYPTION_KEYS?.size && !env.TOKEN_ENCRYPTION_KEYS.has(current)) {
    ctx.addIssue({ code: "custom", path: ["TOKEN_ENCRYPTION_KEY_ID"], message: `"${current}" is not in TOKEN_ENCRYPTION_KEYS` });
  }
}

const encryptionOf = (keys: Map<string, Buffer>, chosen: string | undefined) => ({ keys, currentKeyId: chosen ?? [...keys.keys()][0]! });

const sharedSettings = (e: z.output<z.ZodObject<typeof sharedShape>>) => ({
  databaseUrl: e.DATABASE_URL,
  redisUrl: e.REDIS_URL,
  queuePrefix: e.QUEUE_PREFIX,
  jobs: { attempts: e.JOB_ATTEMPTS, backoffMs: e.JOB_BACKOFF_MS },
  /** Usage answers which days are final from the window the next sync reads (BACKFILL_DAYS, LOOKBACK_HOURS). */
  sync: { intervalMinutes: e.SYNC_INTERVAL_MINUTES, backfillDays: e.BACKFILL_DAYS, lookbackHours: e.LOOKBACK_HOURS },
  usage: { timeoutMs: e.USAGE_QUERY_TIMEOUT_MS },
});

const configSchema = envShape
  .superRefine((env, ctx) => {
    checkKeyId(env, ctx);
    if (env.SUPPORT_TOKEN === env.API_TOKEN) {
      ctx.addIssue({ code: "custom", path: ["SUPPORT_TOKEN"], message: "must differ from API_TOKEN (it is the read-only credential)" });
    }
    // Both or neither: a URL without a secret would send unsigned webhooks, a secret alone does nothing.
    for (const [given, missing] of [["WEBHOOK_URL", "WEBHOOK_SECRET"] as const, ["WEBHOOK_SECRET", "WEBHOOK_URL"] as const]) {
      if (env[given] && !env[missing]) ctx.addIssue({ code: "custom", path: [missing], message: `is required when ${given} is set` });
    }
  })
  .transform((e) => {
    const shared = sharedSettings(e);
    return Object.freeze({
      ...shared,
      env: e.NODE_ENV,
      role: e.ROLE,
      encryption: encryptionOf(e.TOKEN_ENCRYPTION_KEYS, e.TOKEN_ENCRYPTION_KEY_ID),
      replicate: {
        baseUrl: e.REPLICATE_API_BASE_URL.replace(/\/+$/, ""),
        timeoutMs: e.REPLICATE_TIMEOUT_MS,
        requestsPerSecond: e.REPLICATE_REQUESTS_PER_SECOND,
        maxResponseBytes: e.REPLICATE_MAX_RESPONSE_BYTES,
      },
      sync: { ...shared.sync, concurrency: e.WORKER_CONCURRENCY, parallelism: e.BACKFILL_PARALLELISM, sliceMs: e.SYNC_SLICE_MS },
      jobs: { ...shared.jobs, lockMs: e.JOB_LOCK_MS, reconcileSeconds: e.RECONCILE_SECONDS },
      /** Rows one erasure statement deletes at most: a batch holds its locks and grows the WAL only so much. */
      erasure: { batchRows: e.ERASURE_BATCH_ROWS },
      /** apiToken opens everything; supportToken only reads (the support page and the GET routes of /v1). */
      http: { host: e.HOST, port: e.PORT, apiToken: e.API_TOKEN, supportToken: e.SUPPORT_TOKEN },
      /** Where state changes are posted, signed with the secret (Standard Webhooks); null: webhooks off. */
      webhooks: e.WEBHOOK_URL && e.WEBHOOK_SECRET ? { url: e.WEBHOOK_URL, secret: e.WEBHOOK_SECRET } : null,
      logLevel: e.LOG_LEVEL,
    });
  });
export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Validates the environment; throws one ConfigError naming every bad variable. Pure: no files, no defaults for secrets. */
function validate<S extends z.ZodType>(schema: S, env: Env): z.output<S> {
  const blankToMissing = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(blankToMissing);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "environment"}: ${i.message}`));
  }
  return parsed.data;
}

type Env = Record<string, string | undefined>;

/** DATABASE_URL alone, for the migration commands, which need no secrets. */
export const parseDatabaseUrl = (env: Env): string => validate(envShape.pick({ DATABASE_URL: true }), env).DATABASE_URL;

// The keys are only needed to store tokens (connect, replaceToken); the producer's readers work without them.
const producerSchema = z
  .object({ ...sharedShape, TOKEN_ENCRYPTION_KEYS: keyring.optional() })
  .superRefine(checkKeyId)
  .transform((e) =>
    Object.freeze({
      ...sharedSettings(e),
      encryption: e.TOKEN_ENCRYPTION_KEYS ? encryptionOf(e.TOKEN_ENCRYPTION_KEYS, e.TOKEN_ENCRYPTION_KEY_ID) : null,
    }),
  );
export type ProducerConfig = z.output<typeof producerSchema>;

/** The producer's settings from the same variables the service reads (sharedShape and the keys): no API or support token. */
export const loadProducerConfig = (env: Env = process.env): ProducerConfig => validate(producerSchema, env);

/** The service's settings: every variable validated, grouped by subsystem. */
export const parseConfig = (env: Env): Config => validate(configSchema, env);
