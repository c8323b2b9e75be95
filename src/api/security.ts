import type { FastifyHelmetOptions } from "@fastify/helmet";
import type { FastifyReply, FastifyRequest } from "fastify";
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
