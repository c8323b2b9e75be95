import got, { HTTPError, RequestError, type Got } from "got";
import type { z } from "zod";
import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
} from "../errors.js";
import { moduleLogger } from "../logger.js";
import { redactText } from "../redact.js";
import { tokenFingerprint } from "../vault.js";
import { perMinute, type LearnedRate, type RequestRateCap } from "./rate-cap.js";
import { parseRetryAfter } from "./retry-after.js";
import {
  accountSchema,
  deploymentPageSchema,
  predictionPageSchema,
  problemSchema,
  type Account,
  type DeploymentPage,
  type PredictionPage,
} from "./schemas.js";

export interface ReplicateClientOptions {
  baseUrl: string;
  timeoutMs: number;
  /** Retries of 5xx, timeouts and network errors inside one call. */
  retries?: number;
  retryBaseMs?: number;
  rateCap?: RequestRateCap;
}

export interface PredictionListRequest {
  /** A `next` link from the previous page; wins over the filters. */
  cursorUrl?: string | null;
  createdAfter?: Date;
  createdBefore?: Date;
}

const RETRY_STATUS_CODES = [408, 500, 502, 503, 504, 520, 521, 522, 523, 524];

/** Reads prediction metadata and the account a token belongs to; nothing else. */
export class ReplicateClient {
  private readonly http: Got;
  private readonly base: URL;

  constructor(private readonly options: ReplicateClientOptions) {
    this.base = new URL(options.baseUrl.replace(/\/*$/, "/"));
    const baseDelay = options.retryBaseMs ?? 500;
    this.http = got.extend({
      timeout: { request: options.timeoutMs },
      responseType: "text",
      followRedirect: false,
      headers: { accept: "application/json", "user-agent": "replicate-usage-sync/0.1" },
      retry: {
        limit: options.retries ?? 3,
        methods: ["GET"],
        statusCodes: RETRY_STATUS_CODES,
        enforceRetryRules: true,
        // Full jitter: spreads retries of many workers hitting one outage.
        calculateDelay: ({ attemptCount }) => 1 + Math.random() * Math.min(30_000, baseDelay * 2 ** attemptCount),
      },
    });
  }

  async getAccount(token: string): Promise<Account> {
    return this.get(token, new URL("account", this.base), accountSchema);
  }

  async listPredictions(token: string, request: PredictionListRequest = {}): Promise<PredictionPage> {
    return this.get(token, this.predictionsUrl(request), predictionPageSchema);
  }

  /** One page of the account's deployments; `cursorUrl` is a `next` link (same origin only). */
  async listDeployments(token: string, cursorUrl: string | null = null): Promise<DeploymentPage> {
    const url = cursorUrl ? this.sameOriginLink(cursorUrl) : new URL("deployments", this.base);
    return this.get(token, url, deploymentPageSchema);
  }

  /** What requests with this token are paced at now, for health views; null without a rate cap. */
  async learnedRate(token: string): Promise<LearnedRate | null> {
    return (await this.options.rateCap?.learnedRate?.(token)) ?? null;
  }

  /** The URL of a predictions page: the cursor link when given (same origin only), else the filtered first page. */
  predictionsUrl(request: PredictionListRequest): URL {
    if (request.cursorUrl) return this.sameOriginLink(request.cursorUrl);
    const url = new URL("predictions", this.base);
    if (request.createdAfter) url.searchParams.set("created_after", request.createdAfter.toISOString());
    if (request.createdBefore) url.searchParams.set("created_before", request.createdBefore.toISOString());
    return url;
  }

  // The token must only ever travel to the configured API origin.
  private sameOriginLink(link: string): URL {
    let url: URL;
    try {
      url = new URL(link, this.base);
    } catch {
      throw new ForeignLinkError("pagination link is not a valid URL");
    }
    if (url.protocol === "http:" && this.base.protocol === "https:" && url.host === this.base.host) url.protocol = "https:";
    if (url.origin !== this.base.origin) {
      throw new ForeignLinkError(
        `pagination link points to ${url.origin}, not the configured API origin ${this.base.origin}; not followed`,
      );
    }
    return url;
  }

  private async get<S extends z.ZodType>(token: string, url: URL, schema: S): Promise<z.output<S>> {
    const rateCap = this.options.rateCap;
    let body: string;
    try {
      const response = await this.http.get(url, {
        headers: { authorization: `Bearer ${token}` },
        hooks: rateCap ? { beforeRequest: [async () => rateCap.acquire(token)] } : {},
      });
      if (response.statusCode !== 200) {
        throw new MalformedResponseError(`unexpected HTTP ${response.statusCode} from ${url.pathname}`, response.statusCode);
      }
      body = response.body;
    } catch (err) {
      throw await this.learnFrom(toProviderError(err, url, token), token);
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new MalformedResponseError(`response from ${url.pathname} is not valid JSON (${body.length} bytes)`, 200);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      // Issue paths and codes only: values could be user content.
      const where = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.code}`);
      throw new MalformedResponseError(`response from ${url.pathname} does not match the expected shape: ${where.join("; ")}`, 200);
    }
    return parsed.data;
  }

  // A 429 from Replicate lowers the token's shared rate; the event log then says what it is paced at.
  private async learnFrom(error: Error, token: string): Promise<Error> {
    const throttled = this.options.rateCap?.throttled?.bind(this.options.rateCap);
    if (!(error instanceof RateLimitError) || error.retryAfterSource === "local_cap" || !throttled) return error;
    const { retryAfterSeconds: seconds, retryAfterSource: source } = error;
    // Redis failing here must not hide the 429 itself: the job is still delayed by Retry-After.
    const rate = await throttled(token, { seconds, source }).catch((err: unknown) => {
      moduleLogger("replicate").warn("could not lower the learned rate", { error: err instanceof Error ? err.message : String(err) });
      return null;
    });
    if (rate === null) return error;
    return new RateLimitError(`${error.message}; this token is now paced at ${perMinute(rate)} requests/min`, seconds, source);
  }
}

function problemText(body: unknown): string {
  if (typeof body !== "string") return "";
  try {
    const problem = problemSchema.safeParse(JSON.parse(body));
    if (problem.success) return redactText([problem.data.title, problem.data.detail].filter(Boolean).join(": ").slice(0, 300));
  } catch {
    // Not problem-details JSON: say nothing of the body.
  }
  return "";
}

function toProviderError(err: unknown, url: URL, token: string): Error {
  if (err instanceof MalformedResponseError || err instanceof RateLimitError) return err;
  if (err instanceof HTTPError) {
    const status = err.response.statusCode;
    const detail = problemText(err.response.body);
    const suffix = detail ? ` (${detail})` : "";
    if (status === 401) return new CredentialError(`Replicate rejected the token (HTTP 401)${suffix}`, tokenFingerprint(token));
    if (status === 403) return new ScopeError(`the token may not read ${url.pathname} (HTTP 403)${suffix}`, tokenFingerprint(token));
    if (status === 429) {
      const header = err.response.headers["retry-after"];
      const after = parseRetryAfter(Array.isArray(header) ? header[0] : header, detail);
      return new RateLimitError(`Replicate throttled the request (HTTP 429)${suffix}`, after.seconds, after.source);
    }
    if (status >= 500) return new TransientProviderError(`Replicate answered HTTP ${status} on ${url.pathname}`, status);
    return new MalformedResponseError(`unexpected HTTP ${status} from ${url.pathname}${suffix}`, status);
  }
  // A rate-cap wait that became a RateLimitError surfaces wrapped by got.
  if (err instanceof RequestError && err.cause instanceof RateLimitError) return err.cause;
  if (err instanceof RequestError) {
    return new TransientProviderError(`request to ${url.pathname} failed: ${err.code ?? err.name}`, undefined, {
      cause: redactText(err.message),
    });
  }
  return err instanceof Error ? err : new Error(String(err));
}
