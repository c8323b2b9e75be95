import type { FastifyInstance, RouteOptions } from "fastify";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import type { Fault, FakeDeployment, FakePrediction } from "../../dev/fake-replicate.js";
import { API_TOKEN, createHarness, type Harness } from "./harness.js";
import { waitForSyncedSince } from "./sync-checks.js";

export const AUTH = { authorization: `Bearer ${API_TOKEN}` };

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON when the answer is JSON, else the text (null when empty). */
  body: any;
  ms: number;
}

/** One request to the service, with the API token unless other `headers` are given (AUTH spread in keeps it). */
export async function request(
  origin: string,
  method: string,
  url: string,
  payload?: object | string,
  headers: Record<string, string> = AUTH,
): Promise<Reply> {
  const started = Date.now();
  const json = payload !== undefined && typeof payload !== "string";
  const res = await fetch(origin + url, {
    method,
    headers: { ...(json ? { "content-type": "application/json" } : {}), ...headers },
    body: json ? JSON.stringify(payload) : payload,
  });
  const text = await res.text();
  const body = text ? (res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) : null;
  return { status: res.status, headers: res.headers, text, body, ms: Date.now() - started };
}

export interface Api {
  app: FastifyInstance;
  origin: string;
  /** Every response body, for leak checks. */
  responses: string[];
  call(method: string, url: string, payload?: object | string, headers?: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

/** The HTTP API of a harness on a loopback port. */
export async function startApi(h: Harness, options: { onRoute?: (route: RouteOptions) => void } = {}): Promise<Api> {
  const app = await buildServer(h.ctx, options);
  const origin = await app.listen({ host: "127.0.0.1", port: 0 });
  const responses: string[] = [];
  return {
    app,
    origin,
    responses,
    async call(...args) {
      const reply = await request(origin, ...args);
      responses.push(reply.text);
      return reply;
    },
    close: () => app.close(),
  };
}

/** Registers beforeAll/afterAll for a test file: a harness (with running workers unless told) and its HTTP API. */
export function withApi(env: Record<string, string> = {}, options: { workers?: boolean } = {}): { h: Harness; api: Api } {
  const started = {} as { h: Harness; api: Api };
  beforeAll(async () => {
    started.h = await createHarness(env, options);
    started.api = await startApi(started.h);
  });
  afterAll(async () => {
    await started.api?.close();
    await started.h?.close();
  });
  return started;
}

export interface NewAccount {
  /** The account's username; the workspace is ws-<name> unless given. */
  name: string;
  predictions?: FakePrediction[];
  token?: string;
  type?: "user" | "organization";
  workspaceId?: string;
  /** Injected into the account's predictions and account endpoints. */
  faults?: Fault[];
  accountFaults?: Fault[];
  /** Served at the end of every first page. */
  oddRecords?: unknown[];
  deployments?: FakeDeployment[];
}

/** Adds the account to the fake Replicate and connects it: through the HTTP API when given one, else the producer. */
export async function connect(h: Harness, account: NewAccount, via?: Api): Promise<{ id: string; token: string }> {
  const token = account.token ?? `r8_${account.name}Token0000000000000000000000`;
  h.fake.addAccount(token, { type: account.type ?? "organization", username: account.name }, account.predictions);
  h.fake.inject(token, "predictions", ...(account.faults ?? []));
  h.fake.inject(token, "account", ...(account.accountFaults ?? []));
  if (account.oddRecords) h.fake.serveOnFirstPage(token, account.oddRecords);
  if (account.deployments) h.fake.setDeployments(token, account.deployments);
  const workspaceId = account.workspaceId ?? `ws-${account.name}`;
  if (!via) return { id: (await producer.connect(h.ctx, { workspaceId, token })).id, token };
  const created = await via.call("POST", "/v1/connections", { workspaceId, token });
  if (created.status !== 202) throw new Error(`POST /v1/connections answered ${created.status}: ${created.text}`);
  return { id: created.body.id, token };
}

/** connect, then wait until its first sync has finished. */
export async function connectSynced(h: Harness, account: NewAccount, via?: Api): Promise<{ id: string; token: string }> {
  const connection = await connect(h, account, via);
  await waitForSyncedSince(h, connection.id, null);
  return connection;
}
