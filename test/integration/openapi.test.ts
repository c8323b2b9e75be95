import { execFileSync } from "node:child_process";
import type { FastifyInstance, RouteOptions } from "fastify";
import { Redis } from "ioredis";
import pg from "pg";
import { buildServer } from "../../src/api/server.js";
import { JobQueues } from "../../src/queue/queues.js";
import { errorBody } from "../../src/api/schemas.js";
import * as producer from "../../src/producer.js";
import { generatePredictions } from "../../dev/predictions.js";
import { AUTH, request } from "../support/api.js";
import { SUPPORT_TOKEN, createHarness, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";
import { captureLogs } from "../support/leaks.js";
import { ThrowawayRedis } from "../support/redis-server.js";

// The document against the server: it is a valid OpenAPI document, every route is in it, and every
// status each operation documents is one it really answers, and the reverse.

type Doc = { paths: Record<string, Record<string, { operationId?: string; summary?: string; responses: Record<string, unknown> }>> };

let h: Harness;
let app: FastifyInstance;
let origin: string;
let doc: Doc;
const routes: { method: string; url: string }[] = [];
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";
let healthyId: string;
let disconnectedId: string;

/** What each answer was: the route pattern it was sent to, its method and its status. */
const answered: { method: string; route: string; status: number }[] = [];

interface Call {
  method: string;
  url: string;
  payload?: object | string;
  headers?: Record<string, string>;
}

/** A request over HTTP (light-my-request's inject does not load under jest's ESM runtime), answered in its shape. */
async function call(base: string, { method, url, payload, headers = {} }: Call) {
  const { status, headers: answered, text } = await request(base, method, url, payload, headers);
  return { statusCode: status, headers: Object.fromEntries(answered), text, json: () => JSON.parse(text) };
}

async function send(route: string, options: Call) {
  const res = await call(origin, { ...options, headers: { ...AUTH, ...options.headers } });
  answered.push({ method: options.method, route, status: res.statusCode });
  const requestId = res.headers["x-request-id"];
  expect(requestId).toEqual(expect.any(String));
  if (res.statusCode >= 400) expect(errorBody.parse(res.json())).toMatchObject({ requestId });
  return res;
}

const openapiPath = (url: string) => url.replace(/:(\w+)/g, "{$1}");
const at = (route: string, id: string) => route.replace(":id", id);
const IS_WRITE = new Set(["POST", "PUT", "DELETE"]);

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx, {
    onRoute: (r: RouteOptions) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url });
    },
  });
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  const token = "r8_openapiHealthy000000000000";
  h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 40, days: 5, seed: 3 }));
  healthyId = (await producer.connect(h.ctx, { workspaceId: "ws-doc", token })).id;
  await waitForSyncedSince(h, healthyId, null, 20_000);
  h.fake.addAccount("r8_openapiGone0000000000000", { type: "user", username: "gone" });
  disconnectedId = (await producer.connect(h.ctx, { workspaceId: "ws-doc", token: "r8_openapiGone0000000000000" })).id;
  await producer.disconnect(h.ctx, disconnectedId);
  doc = (await call(origin, { method: "GET", url: "/openapi.json", headers: AUTH })).json();
});
afterAll(async () => {
  await app.close();
  await h.close();
});

test("the document is valid OpenAPI (swagger-parser)", () => {
  // swagger-parser is ESM-only inside; node loads it, jest's module runtime does not, so it runs in node.
  const script = `import("@apidevtools/swagger-parser").then((m) => m.default.validate(JSON.parse(require("node:fs").readFileSync(0, "utf8"))))
    .then((api) => console.log(api.openapi), (e) => { console.error(e.message); process.exit(1); })`;
  expect(execFileSync(process.execPath, ["-e", script], { input: JSON.stringify(doc), encoding: "utf8" }).trim()).toBe("3.1.0");
});

test("every registered API route is documented with an operationId and a summary, and groupBy is an enum list", () => {
  // The support page (/ui) and bull-board (/admin/queues) are HTML for people, not API operations.
  const api = routes.filter((r) => r.method !== "HEAD" && !/^\/(ui|admin\/queues)(\/|$)/.test(r.url));
  expect(api.length).toBeGreaterThan(15);
  for (const r of api) {
    const operation = doc.paths[openapiPath(r.url)]?.[r.method.toLowerCase()];
    expect({ route: `${r.method} ${r.url}`, operationId: operation?.operationId, summary: operation?.summary }).toEqual({
      route: `${r.method} ${r.url}`,
      operationId: expect.any(String),
      summary: expect.any(String),
    });
  }
  const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
  expect(new Set(ids).size).toBe(ids.length);
  const usage = doc.paths["/v1/usage"]!.get as unknown as { parameters: { name?: string; schema?: unknown }[] };
  expect(usage.parameters.find((p) => p.name === "groupBy")?.schema).toMatchObject({
    type: "array",
    items: { enum: ["date", "connection", "kind", "model", "deployment", "source", "status"] },
  });
});

test("each operation answers exactly the statuses it documents", async () => {
  // Successes, with inputs that exercise every field of the answers.
  const today = new Date().toISOString().slice(0, 10);
  const range = `from=${new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10)}&to=${today}`;
  await send("/healthz", { method: "GET", url: "/healthz" });
  await send("/readyz", { method: "GET", url: "/readyz" });
  await send("/metrics", { method: "GET", url: "/metrics" });
  await send("/openapi.json", { method: "GET", url: "/openapi.json" });
  const price = { effectiveFrom: "2020-01-01", source: "test" };
  await send("/v1/prices/hardware", {
    method: "POST",
    url: "/v1/prices/hardware",
    payload: { sku: "gpu-t4", usdPerSecond: "0.000225", ...price },
  });
  await send("/v1/prices/models", {
    method: "POST",
    url: "/v1/prices/models",
    payload: { model: "acme/m", unit: "prediction", usdPerUnit: "0.003", ...price },
  });
  await send("/v1/prices/model-hardware", {
    method: "POST",
    url: "/v1/prices/model-hardware",
    payload: { model: "acme/m", sku: "gpu-t4", ...price },
  });
  await send("/v1/prices", { method: "GET", url: "/v1/prices" });
  await send("/v1/prices/history", { method: "GET", url: "/v1/prices/history" });
  const settings = "/v1/workspaces/:workspaceId/settings";
  await send(settings, { method: "PUT", url: "/v1/workspaces/ws-doc/settings", payload: { timeZone: "Asia/Kolkata" } });
  await send(settings, { method: "GET", url: "/v1/workspaces/ws-doc/settings" });
  for (const query of [
    "groupBy=date,model,deployment,source,connection,kind",
    "groupBy=status",
    "groupBy=date&fillZeros=true&timeZone=America/Los_Angeles",
    "format=csv",
  ]) {
    const res = await send("/v1/usage", { method: "GET", url: `/v1/usage?workspaceId=ws-doc&${range}&${query}` });
    expect(res.statusCode).toBe(200);
  }
  await send("/v1/connections", { method: "GET", url: "/v1/connections?limit=1" });
  await send("/v1/connections/:id", { method: "GET", url: at("/v1/connections/:id", healthyId) });
  await send("/v1/connections/:id/events", { method: "GET", url: at("/v1/connections/:id/events", healthyId) });
  await send("/v1/connections/:id/deployments", { method: "GET", url: at("/v1/connections/:id/deployments", healthyId) });
  await send("/v1/connections/:id/sync", { method: "POST", url: at("/v1/connections/:id/sync", healthyId) });
  const created = await send("/v1/connections", {
    method: "POST",
    url: "/v1/connections",
    payload: { workspaceId: "ws-doc-2", token: "r8_openapiSpare00000000000" },
  });
  const spare = created.json().id as string;
  await send("/v1/connections/:id/token", {
    method: "PUT",
    url: at("/v1/connections/:id/token", spare),
    payload: { token: "r8_openapiSpare11111111111" },
  });
  await send("/v1/connections/:id", { method: "DELETE", url: at("/v1/connections/:id", spare) });

  // Conflicts, and readiness with Redis gone (a second server on a client that cannot connect).
  await send("/v1/connections/:id/token", {
    method: "PUT",
    url: at("/v1/connections/:id/token", disconnectedId),
    payload: { token: "r8_openapiLate000000000000" },
  });
  await send("/v1/connections/:id/sync", { method: "POST", url: at("/v1/connections/:id/sync", disconnectedId) });
  await send("/v1/connections", {
    method: "POST",
    url: "/v1/connections",
    payload: { workspaceId: "ws-doc-3", token: "r8_openapiKeyed0000000000" },
    headers: { "idempotency-key": "k-1" },
  });
  await send("/v1/connections", {
    method: "POST",
    url: "/v1/connections",
    payload: { workspaceId: "ws-doc-3", token: "r8_openapiKeyed1111111111" },
    headers: { "idempotency-key": "k-1" },
  });
  // Erasure: refused for a connected connection; a disconnected one, and the workspace form, accepted.
  await send("/v1/connections/:id/erasure", { method: "POST", url: at("/v1/connections/:id/erasure", healthyId), payload: {} });
  await send("/v1/connections/:id/erasure", { method: "POST", url: at("/v1/connections/:id/erasure", disconnectedId) });
  await send("/v1/connections/:id/erasure", { method: "GET", url: at("/v1/connections/:id/erasure", disconnectedId) });
  await send("/v1/workspaces/:workspaceId/erasure", {
    method: "POST",
    url: "/v1/workspaces/ws-doc/erasure",
    payload: { disconnect: false },
  });
  // Redis gone: a second server whose job queue is on a throwaway redis-server, killed, answers
  // readiness and the writes that need Redis.
  const throwaway = await ThrowawayRedis.create();
  await throwaway.start();
  const deadRedis = new Redis(throwaway.url, { maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  const deadQueues = new JobQueues(deadRedis, { ...h.config, queuePrefix: "rus-dead" }, async () => null);
  for (const q of deadQueues.all()) q.on("error", () => undefined);
  await deadQueues.ping();
  await throwaway.kill9();
  const down = await buildServer({ ...h.ctx, queues: deadQueues });
  const downOrigin = await down.listen({ host: "127.0.0.1", port: 0 });
  const viaDown = async (route: string, options: Call) => {
    const res = await call(downOrigin, { ...options, headers: { ...AUTH, ...options.headers } });
    answered.push({ method: options.method, route, status: res.statusCode });
    return res;
  };
  const notReady = await viaDown("/readyz", { method: "GET", url: "/readyz" });
  expect(notReady.json()).toEqual({ status: "not_ready", postgres: "ok", redis: "unreachable" });
  const unqueued = await viaDown("/v1/connections", {
    method: "POST",
    url: "/v1/connections",
    payload: { workspaceId: "ws-doc-4", token: "r8_openapiDown0000000000" },
  });
  expect([unqueued.statusCode, unqueued.json().error]).toEqual([503, "unavailable"]);
  await viaDown("/v1/connections/:id/sync", { method: "POST", url: at("/v1/connections/:id/sync", healthyId) });
  // Last: a replaced token leaves the connection pending.
  await viaDown("/v1/connections/:id/token", {
    method: "PUT",
    url: at("/v1/connections/:id/token", healthyId),
    payload: { token: "r8_openapiDown1111111111" },
  });
  await down.close();
  deadRedis.disconnect();
  await throwaway.destroy();

  // A usage query past its time limit: the price book locked by another transaction, a server allowing 100 ms.
  const locker = new pg.Client({ connectionString: h.t.url });
  await locker.connect();
  await locker.query("BEGIN; LOCK TABLE hardware_prices IN ACCESS EXCLUSIVE MODE");
  const slow = await buildServer({ ...h.ctx, config: { ...h.ctx.config, usage: { timeoutMs: 100 } } });
  const timedOut = await call(await slow.listen({ host: "127.0.0.1", port: 0 }), {
    method: "GET",
    url: `/v1/usage?workspaceId=ws-doc&${range}`,
    headers: AUTH,
  });
  answered.push({ method: "GET", route: "/v1/usage", status: timedOut.statusCode });
  expect([timedOut.statusCode, timedOut.json().error]).toEqual([504, "query_timeout"]);
  await locker.query("ROLLBACK");
  await locker.end();
  await slow.close();

  // Every error each operation documents, driven the same way for all of them.
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const route = path.replace(/\{(\w+)\}/g, ":$1");
      const base = { method: method.toUpperCase(), url: at(route, healthyId) };
      const body = IS_WRITE.has(base.method) ? { payload: route.includes("token") ? { token: "r8_openapiBad00000000000" } : {} } : {};
      const drive: Record<string, () => Promise<unknown>> = {
        400: () => send(route, { ...base, ...body, url: `${base.url}?unknownParameter=1` }),
        401: () => send(route, { ...base, headers: { authorization: "Bearer wrong" } }),
        403: () => send(route, { ...base, ...body, headers: { authorization: `Bearer ${SUPPORT_TOKEN}` } }),
        404: () => send(route, { ...base, ...body, url: at(route, UNKNOWN_ID) }),
        413: () => send(route, { ...base, payload: { padding: "x".repeat(70 * 1024) } }),
        415: () => send(route, { ...base, payload: "plain words", headers: { "content-type": "text/plain" } }),
      };
      for (const status of Object.keys(operation.responses)) await drive[status]?.();
    }
  }

  const key = (a: { method: string; route: string; status: number | string }) => `${a.method} ${openapiPath(a.route)} ${a.status}`;
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) =>
      Object.keys(op.responses)
        .filter((s) => s !== "default")
        .map((status) => key({ method: method.toUpperCase(), route: path, status })),
    ),
  );
  const seen = [...new Set(answered.map(key))];
  expect(seen.filter((s) => !documented.includes(s))).toEqual([]);
  expect(documented.filter((s) => !seen.includes(s))).toEqual([]);
});

test("unknown routes, bad JSON, oversized and non-JSON bodies answer the one error shape", async () => {
  const notFound = await send("*", { method: "GET", url: "/v1/nothing-here" });
  expect(notFound.statusCode).toBe(404);
  expect(notFound.json()).toMatchObject({ error: "not_found", message: "no route GET /v1/nothing-here" });
  const json = { "content-type": "application/json" };
  const badJson = await send("/v1/connections", { method: "POST", url: "/v1/connections", payload: "{", headers: json });
  expect([badJson.statusCode, badJson.json().error]).toEqual([400, "invalid_body"]);
  const empty = await send("/v1/connections", { method: "POST", url: "/v1/connections", payload: "", headers: json });
  expect([empty.statusCode, empty.json().error]).toEqual([400, "invalid_body"]);
  const big = await send("/v1/connections", { method: "POST", url: "/v1/connections", payload: { workspaceId: "x".repeat(70 * 1024) } });
  expect([big.statusCode, big.json().error]).toEqual([413, "payload_too_large"]);
  const text = await send("/v1/connections", {
    method: "POST",
    url: "/v1/connections",
    payload: "hi",
    headers: { "content-type": "text/plain" },
  });
  expect([text.statusCode, text.json().error]).toEqual([415, "unsupported_media_type"]);
  const unknownParam = await send("/v1/connections", { method: "GET", url: "/v1/connections?status=credential_error" });
  expect(unknownParam.statusCode).toBe(400);
  expect(unknownParam.json().issues.join(" ")).toMatch(/status/);
});

test("a caller's well-formed x-request-id is echoed in the header, the error body and the log lines; others are replaced", async () => {
  const logs = captureLogs();
  try {
    const created = await send("/v1/connections", {
      method: "POST",
      url: "/v1/connections",
      payload: { workspaceId: "ws-reqid", token: "r8_openapiRequestId000000" },
      headers: { "x-request-id": "backend-req-42" },
    });
    expect(created.headers["x-request-id"]).toBe("backend-req-42");
    const lines = logs.lines.map((l) => JSON.parse(l) as { message: string; requestId?: string });
    expect(lines.find((l) => l.message === "connection created")).toMatchObject({ requestId: "backend-req-42" });
  } finally {
    logs.stop();
  }
  const failed = await send("/v1/connections/:id", {
    method: "GET",
    url: at("/v1/connections/:id", UNKNOWN_ID),
    headers: { "x-request-id": "backend-req-43" },
  });
  expect(failed.json()).toMatchObject({ error: "not_found", requestId: "backend-req-43" });
  const odd = await send("/healthz", { method: "GET", url: "/healthz", headers: { "x-request-id": "has spaces\tand tabs" } });
  expect(odd.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
});
