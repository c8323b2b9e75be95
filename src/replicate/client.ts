import { promisify } from "node:util";
import { brotliDecompress, unzip } from "node:zlib";
import got, { CancelError, HTTPError, RequestError, type Got, type Response } from "got";
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
import { redactSecret, redactText } from "../redact.js";
import { tokenFingerprint } from "../vault.js";
import { perMinute, type LearnedRate, type RequestRateCap } from "./rate-cap.js";
import { parseRetryAfter } from "./retry-after.js";
import {
  accountSchema,
  deploymentPageSchema,
  predictionPageSchema,
  problemSchema,
  trainingPageSchema,
  type Account,
  type DeploymentPage,
  type PredictionPage,
  type TrainingPage,
} from "./schemas.js";

export interface ReplicateClientOptions {
  baseUrl: string;
  timeoutMs: number;
  /** Retries of 5xx, timeouts and network errors inside one call. */
  retries?: number;
  retryBaseMs?: number;
  rateCap?: RequestRateCap;
  /** Largest body accepted, counted decoded (after gzip/deflate/br) and on the wire; larger ones are aborted. */
  maxResponseBytes?: number;
  /** Asked before each retry for a connection: false (disconnected, or its token replaced) ends the request instead. */
  stillWanted?: (token: string, connectionId: string) => Promise<boolean>;
  /** Aborted at shutdown: requests in flight end at once and their jobs are retried by another worker. */
  signal?: AbortSignal;
}

export interface PredictionListRequest {
  /** A `next` link from the previous page; wins over the filters. */
  cursorUrl?: string | null;
  createdAfter?: Date;
  createdBefore?: Date;
  /** The connection the request is made for: its retries stop once it no longer holds the token. */
  connectionId?: string;
  /** Called as the request goes out (its slot taken, its head written; again for a retry): work that would hold the event loop can run now. */
  onSent?: () => void;
}

const RETRY_STATUS_CODES = [408, 500, 502, 503, 504, 520, 521, 522, 523, 524];

const DECODERS: Record<string, (body: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>> = {
  gzip: promisify(unzip),
  "x-gzip": promisify(unzip),
  deflate: promisify(unzip),
  br: promisify(brotliDecompress),
};

/** A response body that is, or decodes to, more than the limit (a decompression bomb, a runaway proxy). */
class BodyTooLarge extends Error {}

/** A retry not sent because the connection no longer holds the token. */
class NoLongerWanted extends Error {}

/** Reads prediction and training metadata, deployments and the account a token belongs to; nothing else. */
export class ReplicateClient {
  private readonly http: Got;
  private readonly base: URL;

  private readonly maxBytes: number;

  constructor(private readonly options: ReplicateClientOptions) {
    this.base = new URL(options.baseUrl.replace(/\/*$/, "/"));
    this.maxBytes = options.maxResponseBytes ?? 16 * 2 ** 20;
    const baseDelay = options.retryBaseMs ?? 500;
    this.http = got.extend({
      timeout: { request: options.timeoutMs },
      // Bodies are decoded here, with a bound on the decoded size that got's own decoding lacks.
      decompress: false,
      followRedirect: false,
      headers: { accept: "application/json", "accept-encoding": "gzip, deflate, br", "user-agent": "replicate-usage-sync/0.1" },
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

  async getAccount(token: string, connectionId?: string): Promise<Account> {
    return this.get(token, new URL("account", this.base), accountSchema, { connectionId });
  }

  async listPredictions(token: string, request: PredictionListRequest = {}): Promise<PredictionPage> {
    return this.get(token, this.predictionsUrl(request, token), predictionPageSchema, request);
  }

  /** One page of trainings, newest first, read like predictions; without a time filter, the caller stops where its window starts. */
  async listTrainings(token: string, request: Omit<PredictionListRequest, "createdAfter" | "createdBefore"> = {}): Promise<TrainingPage> {
    return this.get(token, this.pageUrl("trainings", request.cursorUrl, token), trainingPageSchema, request);
  }

  /** One page of the account's deployments (an optional read, see `get`); `cursorUrl` is a `next` link (same origin only). */
  async listDeployments(token: string, cursorUrl: string | null = null): Promise<DeploymentPage> {
    return this.get(token, this.pageUrl("deployments", cursorUrl, token), deploymentPageSchema, { optional: true });
  }

  /** What requests with this token are paced at now (a throttled token's windows are not split); null without a rate cap. */
  async learnedRate(token: string): Promise<LearnedRate | null> {
    return (await this.options.rateCap?.learnedRate(token)) ?? null;
  }

  /** The URL of a predictions page: the cursor link when given (same origin only), else the filtered first page. */
  predictionsUrl(request: PredictionListRequest, token = ""): URL {
    const url = this.pageUrl("predictions", request.cursorUrl, token);
    if (request.cursorUrl) return url;
    if (request.createdAfter) url.searchParams.set("created_after", request.createdAfter.toISOString());
    if (request.createdBefore) url.searchParams.set("created_before", request.createdBefore.toISOString());
    return url;
  }

  /** A `next` link (same origin only), else the first page of `path`. */
  private pageUrl(path: string, cursorUrl: string | null | undefined, token: string): URL {
    return cursorUrl ? this.sameOriginLink(cursorUrl, token) : new URL(path, this.base);
  }

  // The token must only ever travel to the configured API origin.
  private sameOriginLink(link: string, token: string): URL {
    if (!URL.canParse(link, this.base)) throw new ForeignLinkError("pagination link is not a valid URL");
    const url = new URL(link, this.base);
    // Credentials in a link would replace the Bearer token with Basic auth, even on the API origin.
    if (url.username || url.password) throw new ForeignLinkError("pagination link carries a user name or password; not followed");
    if (url.protocol === "http:" && this.base.protocol === "https:" && url.host === this.base.host) url.protocol = "https:";
    if (url.origin !== this.base.origin) {
      throw new ForeignLinkError(
        redactSecret(`pagination link points to ${url.origin}, not the configured API origin ${this.base.origin}; not followed`, token),
      );
    }
    return url;
  }

  // An `optional` read (deployments) is sent once, outside the token's pace: the usage requests' slots and rate stay theirs.
  private async get<S extends z.ZodType>(
    token: string,
    url: URL,
    schema: S,
    { connectionId, onSent, optional = false }: Pick<PredictionListRequest, "connectionId" | "onSent"> & { optional?: boolean },
  ): Promise<z.output<S>> {
    const { stillWanted } = this.options;
    const rateCap = optional ? undefined : this.options.rateCap;
    // When the request's slot was reserved: a 429 answering it lowers the pace only if none did since.
    let reservedAt: number | undefined;
    let body: string;
    try {
      const request = this.http.get(url, {
        responseType: "buffer",
        signal: this.options.signal,
        headers: { authorization: `Bearer ${token}` },
        ...(optional ? { retry: { limit: 0 } } : {}),
        hooks: {
          beforeRequest: [
            async () => {
              reservedAt = await rateCap?.acquire(token);
            },
          ],
          // Checked after the backoff, right before the request would go out again.
          beforeRetry: [
            async () => {
              if (stillWanted && connectionId && !(await stillWanted(token, connectionId))) throw new NoLongerWanted();
            },
          ],
        },
      });
      // Emitted (on each attempt) as the head is handed to the socket, which writes it on the next tick.
      if (onSent) request.on("request", () => setImmediate(onSent));
      // Bytes on the wire: a body over the limit is aborted while it streams in.
      request.on("downloadProgress", ({ transferred }) => {
        if (transferred > this.maxBytes) request.cancel();
      });
      const response = await request;
      if (response.statusCode !== 200) {
        throw new MalformedResponseError(`unexpected HTTP ${response.statusCode} from ${url.pathname}`, response.statusCode);
      }
      body = await this.decode(response, token);
    } catch (err) {
      const error = await this.toProviderError(err, url, token);
      throw optional ? error : await this.learnFrom(error, token, reservedAt);
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

  /** The body decoded (at most maxBytes), without the token, before an error, an event or a stored record can hold it. */
  private async decode(response: Response<Buffer>, token: string): Promise<string> {
    const encoding = response.headers["content-encoding"]?.trim().toLowerCase() || "identity";
    if (encoding === "identity") return redactSecret(response.body.toString("utf8"), token);
    const decoder = DECODERS[encoding];
    if (!decoder) throw new MalformedResponseError(`unsupported content-encoding "${encoding.slice(0, 20)}"`, response.statusCode);
    try {
      return redactSecret((await decoder(response.body, { maxOutputLength: this.maxBytes })).toString("utf8"), token);
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new BodyTooLarge();
      throw new MalformedResponseError(`response body is not valid ${encoding}`, response.statusCode);
    }
  }

  private async toProviderError(err: unknown, url: URL, token: string): Promise<Error> {
    if (err instanceof CancelError || err instanceof BodyTooLarge) {
      return new MalformedResponseError(`response from ${url.pathname} is larger than ${this.maxBytes} bytes decoded; aborted`);
    }
    if (err instanceof HTTPError) {
      const text = await this.decode(err.response as Response<Buffer>, token).catch(() => ""); // an undecodable error body says nothing
      return httpError(err.response.statusCode, err.response.headers["retry-after"], text, url, token);
    }
    if (err instanceof MalformedResponseError || err instanceof RateLimitError) return err;
    // A rate-cap wait that became a RateLimitError surfaces wrapped by got.
    if (err instanceof RequestError && err.cause instanceof RateLimitError) return err.cause;
    if (err instanceof RequestError && err.cause instanceof NoLongerWanted) {
      return new TransientProviderError(`request to ${url.pathname} not retried: the connection no longer holds this token`);
    }
    if (err instanceof RequestError) {
      return new TransientProviderError(`request to ${url.pathname} failed: ${err.code ?? err.name}`, undefined, {
        cause: redactSecret(redactText(err.message), token),
      });
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  // A 429 from Replicate lowers the token's shared rate; the event log then says what it is paced at.
  private async learnFrom(error: Error, token: string, reservedAt?: number): Promise<Error> {
    const { rateCap } = this.options;
    if (!(error instanceof RateLimitError) || error.retryAfterSource === "local_cap" || !rateCap) return error;
    const { retryAfterSeconds: seconds, retryAfterSource: source } = error;
    // Redis failing here must not hide the 429 itself: the job is still delayed by Retry-After.
    const rate = await rateCap.throttled(token, { seconds, source }, reservedAt).catch((err: unknown) => {
      moduleLogger("replicate").warn("could not lower the learned rate", { error: err instanceof Error ? err.message : String(err) });
      return null;
    });
    if (rate === null) return error;
    const paced = perMinute(rate);
    return new RateLimitError(`${error.message}; this token is now paced at ${paced} requests/min`, seconds, source, paced);
  }
}

function problemText(body: string): string {
  try {
    const problem = problemSchema.safeParse(JSON.parse(body));
    if (problem.success) return redactText([problem.data.title, problem.data.detail].filter(Boolean).join(": ").slice(0, 300));
  } catch {
    // Not problem-details JSON: say nothing of the body.
  }
  return "";
}

function httpError(status: number, retryAfter: string | string[] | undefined, body: string, url: URL, token: string): Error {
  const detail = problemText(body);
  const suffix = detail ? ` (${detail})` : "";
  if (status === 401) return new CredentialError(`Replicate rejected the token (HTTP 401)${suffix}`, tokenFingerprint(token));
  if (status === 403) return new ScopeError(`the token may not read ${url.pathname} (HTTP 403)${suffix}`, tokenFingerprint(token));
  if (status === 429) {
    const after = parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, body);
    return new RateLimitError(`Replicate throttled the request (HTTP 429)${suffix}`, after.seconds, after.source);
  }
  if (status >= 500) return new TransientProviderError(`Replicate answered HTTP ${status} on ${url.pathname}`, status);
  return new MalformedResponseError(`unexpected HTTP ${status} from ${url.pathname}${suffix}`, status);
}
