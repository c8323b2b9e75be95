import { timingSafeEqual } from "node:crypto";
import type { FastifyHelmetOptions } from "@fastify/helmet";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { errorReply } from "./schemas.js";

/** No framing, no MIME sniffing, and a CSP keeping the support page and bull-board on this service (inline styles: bull-board's). */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  global: true,
  frameguard: { action: "deny" },
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      baseUri: ["'self'"],
      connectSrc: ["'self'"],
      fontSrc: ["'self'", "data:"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      imgSrc: ["'self'", "data:"],
      objectSrc: ["'none'"],
      scriptSrc: ["'self'"],
      scriptSrcAttr: ["'none'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
    },
  },
};

const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"]);

// Browsers send Basic credentials from any site: a write from another origin, or with a non-JSON body (forms, simple fetch), is refused.
export async function refuseCrossSiteWrites(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!STATE_CHANGING.has(request.method)) return;
  const origin = request.headers.origin;
  // Host only, not scheme: TLS may end at a proxy in front of the service.
  if (origin !== undefined && !(URL.canParse(origin) && new URL(origin).host === request.host)) {
    await reply
      .code(403)
      .send(errorReply(request, "forbidden_origin", `${request.method} from origin ${origin} refused: not this service's own origin`));
    return;
  }
  const hasBody = Number(request.headers["content-length"] ?? 0) > 0 || request.headers["transfer-encoding"] !== undefined;
  const type = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (hasBody && type !== "application/json") {
    await reply.code(415).send(errorReply(request, "unsupported_media_type", "request bodies must be application/json"));
  }
}

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

/** Every route but the probes needs a credential; the support token only reads (writes, /metrics and bull-board answer it 403). */
export function requireCredential(http: Config["http"]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = request.url.split("?")[0]!;
    if (PUBLIC_PATHS.has(path)) return;
    const header = request.headers.authorization;
    if (tokenMatches(header, http.apiToken)) return;
    if (tokenMatches(header, http.supportToken)) {
      // It may read the support page (/ui, /ui/…) and /v1/…, matched on the route, not the raw URL.
      const route = request.routeOptions.url ?? path;
      const read = request.method === "GET" || request.method === "HEAD";
      if (!read || !/^\/(ui$|ui\/|v1\/)/.test(route)) await reply.code(403).send(errorReply(request, "forbidden", READ_ONLY));
      return;
    }
    // The Basic challenge lets a browser prompt once for /ui/ and then answer it for the API calls the page makes.
    reply.header("www-authenticate", 'Basic realm="replicate-usage-sync", charset="UTF-8"');
    await reply.code(401).send(errorReply(request, "unauthorized", UNAUTHORIZED));
  };
}
