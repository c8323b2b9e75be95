import { z } from "zod";

// When Replicate says to come back, in this order: the Retry-After header (seconds or an HTTP
// date), a `retry_after` number in the JSON body, the wait in the body's text ("Your rate limit
// resets in ~30s.", "Expected available in 1 second."), else a default.

export const DEFAULT_RETRY_AFTER_SECONDS = 10;
const MAX_RETRY_AFTER_SECONDS = 3600;

export interface RetryAfter {
  seconds: number;
  source: "header" | "body" | "default";
}

const clamp = (s: number) => Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(s)));

const throttleBody = z.object({
  retry_after: z.number().finite().optional().catch(undefined),
  detail: z.string().optional().catch(undefined),
  title: z.string().optional().catch(undefined),
});

const UNIT_SECONDS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60 };
// "resets in ~30s", "available in 5 seconds", "resets in ~2m", "available in 1 minute".
const WAIT_IN_TEXT = /(?:resets|available)\s+in\s+~?\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?)\b/i;

function fromText(text: string): number | null {
  const match = WAIT_IN_TEXT.exec(text);
  if (!match) return null;
  const unit = match[2]!.toLowerCase().replace(/s$/, "") || "s";
  return Number(match[1]) * (UNIT_SECONDS[unit] ?? 1);
}

/** `body` is the response body as text (JSON problem details or plain text). */
export function parseRetryAfter(header: string | undefined, body: string | undefined, now = Date.now()): RetryAfter {
  const value = header?.trim();
  if (value) {
    if (/^\d+(\.\d+)?$/.test(value)) return { seconds: clamp(Number(value)), source: "header" };
    const at = Date.parse(value);
    if (!Number.isNaN(at)) return { seconds: clamp((at - now) / 1000), source: "header" };
  }
  let json: unknown;
  try {
    json = JSON.parse(body ?? "");
  } catch {
    json = null;
  }
  const parsed = throttleBody.safeParse(json);
  const fields = parsed.success ? parsed.data : {};
  if (fields.retry_after !== undefined) return { seconds: clamp(fields.retry_after), source: "body" };
  const fromWords = fromText([fields.detail, fields.title].filter(Boolean).join(" ") || (parsed.success ? "" : (body ?? "")));
  if (fromWords !== null) return { seconds: clamp(fromWords), source: "body" };
  return { seconds: DEFAULT_RETRY_AFTER_SECONDS, source: "default" };
}
