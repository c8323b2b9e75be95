import { timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { errorReply } from "./schemas.js";

const PUBLIC_PATHS = new Set(["/healthz", "/readyz"]);
const READ_ONLY = "the support token only reads (/ui and GET /v1); this needs the API token";
const UNAUTHORIZED = "missing or wrong token (Authorization: Bearer <API_TOKEN or SUPPORT_TOKEN>, or Basic with the token as password)";

/** Bearer for programs, or Basic with the token as the password so a browser's own login prompt opens the support page. */
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

/** What the support token may open: the support page and the reads of /v1, matched on the route, not the raw URL. */
function supportMayOpen(request: FastifyRequest): boolean {
  const route = request.routeOptions.url ?? request.url.split("?")[0]!;
  const read = request.method === "GET" || request.method === "HEAD";
  return read && (route === "/ui" || route.startsWith("/ui/") || route.startsWith("/v1/"));
}

/** Every route but the probes needs a credential; the support token only reads (writes, /metrics and bull-board answer it 403). */
export function requireCredential(http: Config["http"]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (PUBLIC_PATHS.has(request.url.split("?")[0]!)) return;
    const header = request.headers.authorization;
    if (tokenMatches(header, http.apiToken)) return;
    if (tokenMatches(header, http.supportToken)) {
      if (!supportMayOpen(request)) await reply.code(403).send(errorReply(request, "forbidden", READ_ONLY));
      return;
    }
    // The Basic challenge lets a browser prompt once for /ui/ and then answer it for the API calls the page makes.
    reply.header("www-authenticate", 'Basic realm="replicate-usage-sync", charset="UTF-8"');
    await reply.code(401).send(errorReply(request, "unauthorized", UNAUTHORIZED));
  };
}
