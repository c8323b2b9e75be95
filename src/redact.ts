// Secrets must never reach a log line, an event row or an API error, wherever they hide.

const SECRET_KEY = /(token|authorization|secret|password|api_?key|ciphertext|cookie)$/i;
const REPLICATE_TOKEN = /\br8_[A-Za-z0-9]{6,}/g;
const BEARER = /\bBearer\s+[^\s"',;]+/gi;

export const REDACTED = "[REDACTED]";

export function redactText(text: string): string {
  return text.replace(REPLICATE_TOKEN, "r8_[REDACTED]").replace(BEARER, `Bearer ${REDACTED}`);
}

/** Removes one known secret by value, whatever its shape, in any letter case: in text a provider sent back, the token it was sent. */
export function redactSecret(text: string, secret: string): string {
  if (!secret) return text;
  return text.replace(new RegExp(secret.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi"), REDACTED);
}

/** Deep copy with secret-named fields masked and token-shaped substrings removed; symbol keys kept. */
export function redact<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value === "string") return redactText(value) as T;
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) return "[Circular]" as T;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, seen)) as T;
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), stack: value.stack && redactText(value.stack) } as T;
  }
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  const out: Record<string | symbol, unknown> = {};
  for (const key of Reflect.ownKeys(value)) {
    const v = (value as Record<string | symbol, unknown>)[key];
    out[key] = typeof key === "string" && SECRET_KEY.test(key) && v != null ? REDACTED : redact(v, seen);
  }
  return out as T;
}
