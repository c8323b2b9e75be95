import { timingSafeEqual } from "node:crypto";

/**
 * The API token as the request presents it: `Authorization: Bearer <token>` for programs, or HTTP
 * Basic with the token as the password (any user name) so a browser can open the support page and
 * the queue dashboard with its own login prompt.
 */
export function presentedToken(header: string | undefined): string | null {
  const [scheme, value] = (header ?? "").split(" ", 2);
  if (!value) return null;
  if (scheme === "Bearer") return value;
  if (scheme === "Basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    return decoded.slice(decoded.indexOf(":") + 1);
  }
  return null;
}

export function tokenMatches(header: string | undefined, expected: string): boolean {
  const given = Buffer.from(presentedToken(header) ?? "");
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}
