// When Replicate says to come back: Retry-After (seconds or an HTTP date), else the seconds in the
// problem-details text ("Expected available in 1 second."), else a default.

export const DEFAULT_RETRY_AFTER_SECONDS = 10;
const MAX_RETRY_AFTER_SECONDS = 3600;

export interface RetryAfter {
  seconds: number;
  source: "header" | "body" | "default";
}

const clamp = (s: number) => Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(s)));

export function parseRetryAfter(header: string | undefined, bodyText: string | undefined, now = Date.now()): RetryAfter {
  const value = header?.trim();
  if (value) {
    if (/^\d+(\.\d+)?$/.test(value)) return { seconds: clamp(Number(value)), source: "header" };
    const at = Date.parse(value);
    if (!Number.isNaN(at)) return { seconds: clamp((at - now) / 1000), source: "header" };
  }
  const match = bodyText?.match(/available in\s+(\d+(?:\.\d+)?)\s*seconds?/i);
  if (match) return { seconds: clamp(Number(match[1])), source: "body" };
  return { seconds: DEFAULT_RETRY_AFTER_SECONDS, source: "default" };
}
