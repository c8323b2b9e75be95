import { once } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A real HTTP server on loopback that speaks Replicate's API shapes (account, paginated
 * predictions newest first, problem-details errors) with faults that can be injected per token.
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
  metrics?: { predict_time?: number | null; total_time?: number | null } | null;
  input?: unknown;
  output?: unknown;
  logs?: string | null;
  error?: string | null;
  urls?: Record<string, string>;
  data_removed?: boolean;
}

export interface FakeAccount {
  type: "user" | "organization";
  username: string;
  name?: string;
}

export type Fault =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  | { kind: "truncated-json" }
  | { kind: "schema-violation" }
  | { kind: "foreign-next" }
  | { kind: "delay"; ms: number }
  | { kind: "duplicate-results" }
  /** Ignore created_after/created_before (a server that does not filter). */
  | { kind: "ignore-filters" };

type Endpoint = "account" | "predictions";

interface TokenState {
  account: FakeAccount;
  /** Sorted newest first by (created_at, id). */
  predictions: FakePrediction[];
  faults: Record<Endpoint, Fault[]>;
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

const newestFirst = (a: FakePrediction, b: FakePrediction) =>
  a.created_at === b.created_at ? (a.id < b.id ? 1 : a.id > b.id ? -1 : 0) : a.created_at < b.created_at ? 1 : -1;

export class FakeReplicate {
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly tokens = new Map<string, TokenState>();
  readonly requests: RecordedRequest[] = [];
  pageSize = 100;
  /** Added to every predictions page; the benchmarks use it to model network latency. */
  pageLatencyMs = 0;
  /** When set, a starting/processing prediction has succeeded by the next request after it was listed, as real ones finish. */
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

  addAccount(token: string, account: FakeAccount, predictions: FakePrediction[] = []): void {
    this.tokens.set(token, { account, predictions: [...predictions].sort(newestFirst), faults: { account: [], predictions: [] } });
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

  predictions(token: string): FakePrediction[] {
    return this.state(token).predictions;
  }

  /** One-shot faults, served in order to the next requests of that token on that endpoint. */
  inject(token: string, endpoint: Endpoint, ...faults: Fault[]): void {
    this.state(token).faults[endpoint].push(...faults);
  }

  pendingFaults(token: string): number {
    const f = this.state(token).faults;
    return f.account.length + f.predictions.length;
  }

  private state(token: string): TokenState {
    const state = this.tokens.get(token);
    if (!state) throw new Error("unknown fake token");
    return state;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const endpoint: Endpoint | "unknown" =
      url.pathname === "/v1/account" ? "account" : url.pathname === "/v1/predictions" ? "predictions" : "unknown";
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

    const fault = state.faults[endpoint].shift();
    if (fault?.kind === "status")
      return send(fault.status, fault.body ?? JSON.stringify({ detail: http.STATUS_CODES[fault.status] }), fault.headers);
    const delay = (fault?.kind === "delay" ? fault.ms : 0) + (endpoint === "predictions" ? this.pageLatencyMs : 0);
    if (delay > 0) await waitUnlessClosed(res, delay);
    if (res.destroyed) return;

    if (endpoint === "account") return send(200, JSON.stringify({ ...state.account, github_url: null }));

    const body = this.page(state, url, fault);
    if (fault?.kind === "truncated-json") return send(200, body.slice(0, Math.max(1, Math.floor(body.length / 2))));
    return send(200, body);
  }

  private page(state: TokenState, url: URL, fault: Fault | undefined): string {
    const rawCursor = url.searchParams.get("cursor");
    const cursor: Cursor | null = rawCursor ? JSON.parse(Buffer.from(rawCursor, "base64url").toString()) : null;
    const ignore = fault?.kind === "ignore-filters";
    const after = ignore ? undefined : (cursor?.after ?? url.searchParams.get("created_after") ?? undefined);
    const before = ignore ? undefined : (cursor?.before ?? url.searchParams.get("created_before") ?? undefined);
    const list = state.predictions;
    let i = cursor ? this.firstAfterKey(list, cursor.last) : before ? this.firstOlderThan(list, before) : 0;
    const results: FakePrediction[] = [];
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
      next = `${this.baseUrl}/predictions?cursor=${Buffer.from(JSON.stringify(c)).toString("base64url")}`;
    }
    if (fault?.kind === "foreign-next") next = `http://attacker.invalid/v1/predictions?cursor=stolen`;
    if (this.finishListedInFlight) this.finish(state, results);
    const served: unknown[] =
      fault?.kind === "duplicate-results" ? [...results, ...results.slice(0, Math.ceil(results.length / 2))] : results;
    if (fault?.kind === "schema-violation") served.push({ id: 42, status: null, created_at: "yesterday" });
    return JSON.stringify({ next, previous: null, results: served });
  }

  /** Replaces each listed in-flight prediction with its succeeded state (same key, so the order holds); `results` keeps what was listed. */
  private finish(state: TokenState, results: FakePrediction[]): void {
    const done = new Map(
      results
        .filter((p) => p.status === "starting" || p.status === "processing")
        .map((p) => [
          p.id,
          { ...p, status: "succeeded", started_at: p.started_at ?? p.created_at, completed_at: new Date().toISOString() },
        ]),
    );
    if (done.size > 0) state.predictions = state.predictions.map((p) => done.get(p.id) ?? p);
  }

  // Binary searches over the newest-first list.
  private firstOlderThan(list: FakePrediction[], before: string): number {
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

  private firstAfterKey(list: FakePrediction[], [createdAt, id]: [string, string]): number {
    const key = { created_at: createdAt, id } as FakePrediction;
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

/** Sleeps, but stops as soon as the client hangs up, so a closed server leaves no timers behind. */
function waitUnlessClosed(res: ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    res.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
