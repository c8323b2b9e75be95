import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { request } from "../support/api.js";
import { API_TOKEN, SUPPORT_TOKEN, createHarness, type Harness } from "../support/harness.js";

// The read-only support credential, tried on every route the server registers.

let h: Harness;
let app: FastifyInstance;
let origin: string;
let connectionId: string;

beforeAll(async () => {
  h = await createHarness({}, { workers: false });
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  connectionId = (await producer.connect(h.ctx, { workspaceId: "ws-least", token: "r8_leastPrivilegeToken0000000" })).id;
});
afterAll(async () => {
  await app?.close();
  await h.close();
});

interface Route {
  method: string;
  url: string;
}

/** Every method and full path from fastify's route tree (`printRoutes({ commonPrefix: false })`). */
function registeredRoutes(): Route[] {
  const parents: string[] = [];
  const routes: Route[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+) \(([^)]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const parent = parents[depth - 1] ?? "";
    // A wildcard is printed under its static prefix without the slash between them (`/ui` → `*`).
    const url = parent + (m[2] === "*" && !parent.endsWith("/") ? "/*" : m[2]!);
    parents[depth] = url;
    for (const method of m[3]!.split(", ")) routes.push({ method, url });
  }
  return routes;
}

/** A concrete URL for a route pattern: this test's connection, an existing queue, a page file. */
function concrete(pattern: string): string {
  return pattern
    .replace(":id", connectionId)
    .replace(":queueName", "sync")
    .replace(/:[A-Za-z]+/g, "x")
    .replace(/\*$/, "index.html");
}

async function call(token: string, { method, url }: Route) {
  const withBody = ["POST", "PUT", "PATCH"].includes(method);
  return request(origin, method, concrete(url), withBody ? {} : undefined, { authorization: `Bearer ${token}` });
}

const PUBLIC = new Set(["/healthz", "/readyz"]);
const readableBySupport = ({ method, url }: Route) =>
  (method === "GET" || method === "HEAD") && (url === "/ui" || url.startsWith("/ui/") || url.startsWith("/v1/"));

test("the support token opens /ui and every GET of /v1, and is refused (403, JSON) on every other route", async () => {
  const routes = registeredRoutes().filter((r) => !PUBLIC.has(r.url));
  const allowed = routes.filter(readableBySupport);
  const refused = routes.filter((r) => !readableBySupport(r));
  // The enumeration found what it must: the API's writes, /metrics and bull-board's pages and actions.
  expect(refused).toEqual(
    expect.arrayContaining([
      { method: "POST", url: "/v1/connections" },
      { method: "PUT", url: "/v1/connections/:id/token" },
      { method: "POST", url: "/v1/connections/:id/sync" },
      { method: "DELETE", url: "/v1/connections/:id" },
      { method: "GET", url: "/metrics" },
      { method: "GET", url: "/admin/queues" },
      { method: "PUT", url: "/admin/queues/api/queues/:queueName/obliterate" },
    ]),
  );
  expect(allowed).toEqual(
    expect.arrayContaining([
      { method: "GET", url: "/v1/connections/:id/events" },
      { method: "GET", url: "/ui/*" },
    ]),
  );

  const wrong: string[] = [];
  for (const route of refused) {
    const { status, body } = await call(SUPPORT_TOKEN, route);
    const shaped = route.method === "HEAD" || (typeof body === "object" && body !== null && "error" in body && "message" in body);
    if (status !== 403 || !shaped) wrong.push(`${route.method} ${route.url}: ${status} ${JSON.stringify(body)}`);
  }
  for (const route of allowed) {
    const { status } = await call(SUPPORT_TOKEN, route);
    if (status === 401 || status === 403) wrong.push(`${route.method} ${route.url}: ${status} (support token refused)`);
  }
  expect(wrong).toEqual([]);
  expect(refused.length).toBeGreaterThan(40);

  // Nothing a refused write would have done happened.
  const c = await h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } });
  expect({ status: c.status, token: c.tokenCiphertext !== null }).toEqual({ status: "pending", token: true });
  expect(await h.ctx.queues.queue("sync").isPaused()).toBe(false);
});

test("the API token still opens everything, and the support token works as a Basic password in a browser", async () => {
  for (const url of ["/metrics", "/admin/queues", "/openapi.json", "/ui/"]) {
    expect({ url, status: (await call(API_TOKEN, { method: "GET", url })).status }).toEqual({ url, status: 200 });
  }
  const basic = `Basic ${Buffer.from(`support:${SUPPORT_TOKEN}`).toString("base64")}`;
  expect((await fetch(`${origin}/ui/`, { headers: { authorization: basic } })).status).toBe(200);
  const list = await fetch(`${origin}/v1/connections/${connectionId}`, { headers: { authorization: basic } });
  expect(list.status).toBe(200);
  const dashboard = await fetch(`${origin}/admin/queues`, { headers: { authorization: basic } });
  expect(dashboard.status).toBe(403);
  expect(await dashboard.json()).toEqual({
    error: "forbidden",
    message: expect.stringContaining("API token"),
    requestId: expect.any(String),
  });
});
