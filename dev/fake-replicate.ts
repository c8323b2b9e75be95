import { once } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";

/**
 * A real HTTP server on loopback that speaks Replicate's API shapes (account, paginated
 * predictions and trainings newest first, deployments, problem-details errors) with faults that can
 * be injected per token.
 * The tests, the demo and the benchmarks all use this one implementation.
 */

export interface FakePrediction {
  id: string;
  status: string;
  created_at: string;
  model?: string | null;
  version?: string | null;
  deployment?: string | null;
  source?: string | null;
  started_at?: string | null;
  completed_at?: string | null;
  metrics?: {
    predict_time?: number | null;
    total_time?: number | null;
    input_token_count?: number | null;
    output_token_count?: number | null;
  } | null;
  input?: unknown;
  output?: unknown;
  logs?: string | null;
  error?: string | null;
  urls?: Record<string, string>;
  data_removed?: boolean;
}

/** A training has a prediction's shape (GET /v1/trainings), without a deployment. */
export type FakeTraining = Omit<FakePrediction, "deployment" | "data_removed">;

export interface FakeDeployment {
  owner: string;
  name: string;
  current_release: {
    number: number;
    model: string;
    version: string;
    created_at: string;
    configuration: { hardware: string; min_instances: number; max_instances: number };
  } | null;
}

export interface FakeAccount {
  type: "user" | "organization";
  username: string;
  name?: string;
}

export type Fault =
  /** An error status, after `delayMs` when given (a slow failing upstream). */
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  | { kind: "truncated-json" }
  /** A page whose shape is wrong (not one odd record: the page itself). */
  | { kind: "schema-violation" }
  | { kind: "foreign-next" }
  /** A next link on the API origin carrying user:password. */
  | { kind: "userinfo-next" }
  /** A gzip-encoded 200 whose body decodes to `decodedBytes` (a decompression bomb). */
  | { kind: "gzip-bomb"; decodedBytes: number }
  | { kind: "delay"; ms: number }
  /** Answers as usual once `until` settles: a request held open for as long as a test needs it. */
  | { kind: "hold"; until: Promise<unknown> }
  | { kind: "duplicate-results" }
  /** Ignore created_after/created_before (a server that does not filter). */
  | { kind: "ignore-filters" };

type Endpoint = "account" | "predictions" | "trainings" | "deployments";
/** The paginated usage endpoints: predictions (filtered by created_after/created_before) and trainings (no filter). */
type UsageEndpoint = "predictions" | "trainings";

/**
 * Replicate's throttle for accounts low on credit: `requests` per `perMs` with a burst of `burst`
 * (6 per 60 000 ms, burst 1), a token bucket per API token, answered with 429 and the wait in the body.
 */
export interface RateLimit {
  requests: number;
  perMs: number;
  burst: number;
}

interface TokenState {
  account: FakeAccount;
  /** Sorted newest first by (created_at, id). */
  predictions: FakePrediction[];
  /** Sorted newest first by (created_at, id). */
  trainings: FakeTraining[];
  deployments: FakeDeployment[];
  faults: Record<Endpoint, Fault[]>;
  /** Served on every request of the endpoint once its one-shot faults are used up, until cleared. */
  standing: Partial<Record<Endpoint, Fault>>;
  /** Raw records served at the end of every run's first page (odd or invalid predictions), see serveOnFirstPage. */
  oddRecords: unknown[];
  bucket?: { tokens: number; at: number };
}

export interface RecordedRequest {
  endpoint: Endpoint | "unknown";
  url: string;
  authorization: string | undefined;
  at: number;
  status: number;
}

interface Cursor {
  after?: string;
  before?: string;
  /** Key of the last prediction served. */
  last: [string, string];
}

const FOREIGN_NEXT = "http://attacker.invalid/v1/predictions?cursor=stolen";
const SCHEMA_VIOLATION = JSON.stringify({ next: 42, previous: null, results: { id: "not a list" } });

const ENDPOINTS: Record<string, Endpoint> = {
  "/v1/account": "account",
  "/v1/predictions": "predictions",
  "/v1/trainings": "trainings",
  "/v1/deployments": "deployments",
};

const newestFirst = (a: FakeTraining, b: FakeTraining) =>
  a.created_at === b.created_at ? (a.id < b.id ? 1 : a.id > b.id ? -1 : 0) : a.created_at < b.created_at ? 1 : -1;

export class FakeReplicate {
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly tokens = new Map<string, TokenState>();
  readonly requests: RecordedRequest[] = [];
  pageSize = 100;
  deploymentPageSize = 100;
  /** When set, every token is throttled like an account low on credit. */
  rateLimit: RateLimit | null = null;
  /** Added to every predictions and trainings page; the benchmarks use it to model network latency. */
  pageLatencyMs = 0;
  /** When set, a starting/processing prediction (or training) has succeeded by the next request after it was listed, as real ones finish. */
  finishListedInFlight = false;
  baseUrl = "";

  async start(port = 0): Promise<string> {
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
    return this.baseUrl;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addAccount(token: string, account: FakeAccount, predictions: FakePrediction[] = [], trainings: FakeTraining[] = []): void {
    this.tokens.set(token, {
      account,
      predictions: [...predictions].sort(newestFirst),
      trainings: [...trainings].sort(newestFirst),
      deployments: [],
      faults: { account: [], predictions: [], trainings: [], deployments: [] },
      standing: {},
      oddRecords: [],
    });
  }

  removeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** Adds or replaces predictions (a status change is a replace with the same id). */
  upsertPredictions(token: string, predictions: FakePrediction[]): void {
    const state = this.state(token);
    const byId = new Map(state.predictions.map((p) => [p.id, p]));
    for (const p of predictions) byId.set(p.id, p);
    state.predictions = [...byId.values()].sort(newestFirst);
  }

  /** Adds or replaces trainings (a status change is a replace with the same id). */
  upsertTrainings(token: string, trainings: FakeTraining[]): void {
    const state = this.state(token);
    const byId = new Map(state.trainings.map((t) => [t.id, t]));
    for (const t of trainings) byId.set(t.id, t);
    state.trainings = [...byId.values()].sort(newestFirst);
  }

  /** Replaces what GET /v1/deployments lists for the token. */
  setDeployments(token: string, deployments: FakeDeployment[]): void {
    this.state(token).deployments = deployments;
  }

  predictions(token: string): FakePrediction[] {
    return this.state(token).predictions;
  }

  trainings(token: string): FakeTraining[] {
    return this.state(token).trainings;
  }

  /** Records served as they are at the end of every first page (not one-shot: a real account keeps them). */
  serveOnFirstPage(token: string, records: unknown[]): void {
    this.state(token).oddRecords.push(...records);
  }

  /** One-shot faults, served in order to the next requests of that token on that endpoint. */
  inject(token: string, endpoint: Endpoint, ...faults: Fault[]): void {
    this.state(token).faults[endpoint].push(...faults);
  }

  /** An endpoint that keeps failing: `fault` answers every request to it (after any one-shot faults) until set to null. */
  failEvery(token: string, endpoint: Endpoint, fault: Fault | null): void {
    const standing = this.state(token).standing;
    if (fault) standing[endpoint] = fault;
    else delete standing[endpoint];
  }

  /** Drops the faults not served yet, standing ones too. */
  clearFaults(token: string): void {
    const state = this.state(token);
    const f = state.faults;
    f.account.length = f.predictions.length = f.trainings.length = f.deployments.length = 0;
    state.standing = {};
  }

  pendingFaults(token: string): number {
    const f = this.state(token).faults;
    return f.account.length + f.predictions.length + f.trainings.length + f.deployments.length;
  }

  private state(token: string): TokenState {
    const state = this.tokens.get(token);
    if (!state) throw new Error("unknown fake token");
    return state;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const endpoint = ENDPOINTS[url.pathname] ?? "unknown";
    const record: RecordedRequest = {
      endpoint,
      url: url.pathname + url.search,
      authorization: req.headers.authorization,
      at: Date.now(),
      status: 0,
    };
    this.requests.push(record);
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      record.status = status;
      if (!res.headersSent) res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(body);
    };
    const problem = (status: number, detail: string, headers?: Record<string, string>) =>
      send(status, JSON.stringify({ title: http.STATUS_CODES[status], detail, status }), headers);

    if (req.method !== "GET" || endpoint === "unknown") return problem(404, "Not found.");
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const state = token ? this.tokens.get(token) : undefined;
    if (!state) return problem(401, "You did not pass a valid authentication token");

    const waitMs = this.rateLimit ? this.take(state, this.rateLimit) : 0;
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      return problem(429, `Request was throttled. Expected available in ${seconds} second${seconds === 1 ? "" : "s"}.`);
    }

    const fault = state.faults[endpoint].shift() ?? state.standing[endpoint];
    const delay =
      (fault?.kind === "delay" ? fault.ms : fault?.kind === "status" ? (fault.delayMs ?? 0) : 0) +
      (endpoint === "predictions" || endpoint === "trainings" ? this.pageLatencyMs : 0);
    if (delay > 0) await waitUnlessClosed(res, delay);
    if (fault?.kind === "hold") await waitUnlessClosed(res, fault.until);
    if (res.destroyed) return;
    if (fault?.kind === "status")
      return send(fault.status, fault.body ?? JSON.stringify({ detail: http.STATUS_CODES[fault.status] }), fault.headers);
    if (fault?.kind === "gzip-bomb") {
      record.status = 200;
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
      return void res.end(gzipBomb(fault.decodedBytes));
    }

    if (endpoint === "account") return send(200, JSON.stringify({ ...state.account, github_url: null }));
    const body = endpoint === "deployments" ? this.deploymentPage(state, url, fault) : this.page(state, endpoint, url, fault);
    if (fault?.kind === "truncated-json") return send(200, body.slice(0, Math.max(1, Math.floor(body.length / 2))));
    return send(200, body);
  }

  private page(state: TokenState, endpoint: UsageEndpoint, url: URL, fault: Fault | undefined): string {
    const rawCursor = url.searchParams.get("cursor");
    const cursor: Cursor | null = rawCursor ? JSON.parse(Buffer.from(rawCursor, "base64url").toString()) : null;
    // GET /v1/trainings has no time filter: every page lists the account's trainings from the newest.
    const ignore = fault?.kind === "ignore-filters" || endpoint === "trainings";
    const after = ignore ? undefined : (cursor?.after ?? url.searchParams.get("created_after") ?? undefined);
    const before = ignore ? undefined : (cursor?.before ?? url.searchParams.get("created_before") ?? undefined);
    const list: FakeTraining[] = state[endpoint];
    let i = cursor ? this.firstAfterKey(list, cursor.last) : before ? this.firstOlderThan(list, before) : 0;
    const results: FakeTraining[] = [];
    for (; i < list.length && results.length < this.pageSize; i++) {
      const p = list[i]!;
      if (after && Date.parse(p.created_at) < Date.parse(after)) {
        i = list.length;
        break;
      }
      results.push(p);
    }
    const more = i < list.length && !(after && Date.parse(list[i]!.created_at) < Date.parse(after));
    const last = results[results.length - 1];
    let next: string | null = null;
    if (more && last) {
      const c: Cursor = { after, before, last: [last.created_at, last.id] };
      next = `${this.baseUrl}/${endpoint}?cursor=${Buffer.from(JSON.stringify(c)).toString("base64url")}`;
    }
    if (fault?.kind === "foreign-next") next = FOREIGN_NEXT;
    if (fault?.kind === "userinfo-next" && next) next = next.replace("://", "://evil:pw@");
    if (this.finishListedInFlight) this.finish(state, endpoint, results);
    const served: unknown[] =
      fault?.kind === "duplicate-results" ? [...results, ...results.slice(0, Math.ceil(results.length / 2))] : results;
    // On a run's first page only: the window reaching the newest predictions (a run split into time
    // windows asks for each window's first page; the odd records belong to one of them).
    const firstPage = !cursor && (!before || list.every((p) => Date.parse(p.created_at) < Date.parse(before)));
    if (endpoint === "predictions" && firstPage) served.push(...state.oddRecords);
    if (fault?.kind === "schema-violation") return SCHEMA_VIOLATION;
    return JSON.stringify({ next, previous: null, results: served });
  }

  /** Takes one request from the token's bucket; returns 0, or how long until one is available. */
  private take(state: TokenState, limit: RateLimit): number {
    const now = Date.now();
    const perMs = limit.requests / limit.perMs;
    const bucket = state.bucket ?? { tokens: limit.burst, at: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    state.bucket = bucket;
    if (bucket.tokens < 1) return (1 - bucket.tokens) / perMs;
    bucket.tokens -= 1;
    return 0;
  }

  // Offset cursors: deployments are few and do not move while listed.
  private deploymentPage(state: TokenState, url: URL, fault: Fault | undefined): string {
    const offset = Number(url.searchParams.get("cursor") ?? 0);
    const results = state.deployments.slice(offset, offset + this.deploymentPageSize);
    const more = offset + results.length < state.deployments.length;
    const next = more ? `${this.baseUrl}/deployments?cursor=${offset + results.length}` : null;
    if (fault?.kind === "schema-violation") return SCHEMA_VIOLATION;
    return JSON.stringify({ next: fault?.kind === "foreign-next" ? FOREIGN_NEXT : next, previous: null, results });
  }

  /** Replaces each listed in-flight record with its succeeded state (same key, so the order holds); `results` keeps what was listed. */
  private finish(state: TokenState, endpoint: UsageEndpoint, results: FakeTraining[]): void {
    const done = new Map(
      results
        .filter((p) => p.status === "starting" || p.status === "processing")
        .map((p) => [
          p.id,
          { ...p, status: "succeeded", started_at: p.started_at ?? p.created_at, completed_at: new Date().toISOString() },
        ]),
    );
    if (done.size === 0) return;
    if (endpoint === "trainings") state.trainings = state.trainings.map((t) => done.get(t.id) ?? t);
    else state.predictions = state.predictions.map((p) => done.get(p.id) ?? p);
  }

  // Binary searches over the newest-first list.
  private firstOlderThan(list: FakeTraining[], before: string): number {
    const t = Date.parse(before);
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Date.parse(list[mid]!.created_at) >= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private firstAfterKey(list: FakeTraining[], [createdAt, id]: [string, string]): number {
    const key = { created_at: createdAt, id } as FakeTraining;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (newestFirst(list[mid]!, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Waits `until` ms, or until the promise settles, but stops as soon as the client hangs up, so a closed server leaves no timers behind. */
function waitUnlessClosed(res: ServerResponse, until: number | Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    const timer = typeof until === "number" ? setTimeout(done, until) : void until.then(done, done);
    res.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * gzip members concatenate (RFC 1952), so one compressed MiB of spaces repeated gives a body that
 * decodes to `decodedBytes` while staying about a thousandth of that on the wire.
 */
function gzipBomb(decodedBytes: number): Buffer {
  const mib = 1 << 20;
  const head = gzipSync('{"next":null,"previous":null,"results":[');
  const block = gzipSync(Buffer.alloc(mib, " "), { level: 9 });
  return Buffer.concat([head, ...Array.from({ length: Math.ceil(decodedBytes / mib) }, () => block)]);
}
