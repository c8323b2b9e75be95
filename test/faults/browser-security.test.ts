import type { FastifyInstance } from "fastify";
import type { Browser, Page } from "playwright-core";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { launchChromium } from "../support/browser.js";
import { recordScenario } from "../support/fault-summary.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";
import { generatePredictions } from "../../dev/predictions.js";

// What a hostile web page can make a logged-in support browser do, and what the pages themselves load.

let h: Harness;
let app: FastifyInstance;
let origin: string;
let browser: Browser;
let connectionId: string;
const basic = `Basic ${Buffer.from(`support:${API_TOKEN}`).toString("base64")}`;

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  browser = await launchChromium();
  const token = "r8_browserSecurityToken0000000";
  h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 50, days: 5, seed: 5 }));
  connectionId = (await producer.connect(h.ctx, { workspaceId: "ws-browser", token })).id;
  await waitFor(
    "connected",
    () => h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } }),
    (c) => c.status === "connected",
  );
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await h.close();
});

async function send(method: string, path: string, headers: Record<string, string>, body?: string) {
  const res = await fetch(origin + path, { method, headers: { authorization: basic, ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

test("the pages may not be framed or MIME-sniffed and carry a same-origin CSP", async () => {
  for (const path of ["/ui/", "/admin/queues", "/v1/connections"]) {
    const { status, headers } = await send("GET", path, {});
    expect({ path, status }).toEqual({ path, status: 200 });
    expect(headers.get("x-frame-options")).toBe("DENY");
    expect(headers.get("x-content-type-options")).toBe("nosniff");
    const csp = headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toMatch(/https:/); // nothing may be loaded from another host
  }
  recordScenario({
    scenario: "Support page framed by another site (clickjacking)",
    injected: "GET /ui/, /admin/queues, /v1/*",
    outcome: "X-Frame-Options DENY, CSP frame-ancestors 'none', nosniff",
  });
});

test("a cross-site page cannot make a logged-in browser change anything", async () => {
  const sync = `/v1/connections/${connectionId}/sync`;
  // What an HTML form on evil.example posting to the service sends (no CORS preflight for text/plain).
  const forged = await send("POST", sync, { origin: "https://evil.example", "content-type": "text/plain" }, "x");
  expect(forged.status).toBe(403);
  expect(forged.json()).toEqual({
    error: "forbidden_origin",
    message: expect.stringContaining("https://evil.example"),
    requestId: expect.any(String),
  });
  expect((await send("DELETE", `/v1/connections/${connectionId}`, { origin: "null" })).status).toBe(403);
  const foreignJson = await send(
    "PUT",
    `/v1/connections/${connectionId}/token`,
    { origin: "http://127.0.0.2", "content-type": "application/json" },
    "{}",
  );
  expect(foreignJson.status).toBe(403);

  // Same origin (or no Origin at all: programs) but a body that is not JSON.
  const sameOriginText = await send("POST", sync, { origin, "content-type": "text/plain" }, "x");
  expect(sameOriginText.status).toBe(415);
  expect(sameOriginText.json()).toEqual({
    error: "unsupported_media_type",
    message: expect.stringContaining("application/json"),
    requestId: expect.any(String),
  });
  expect((await send("POST", sync, { "content-type": "application/x-www-form-urlencoded" }, "a=1")).status).toBe(415);

  // The connection is untouched, and the service's own page and programs still work.
  const c = await h.ctx.db.connection.findUniqueOrThrow({ where: { id: connectionId } });
  expect(c.status).toBe("connected");
  expect((await send("POST", sync, { origin })).status).toBe(202);
  expect((await send("POST", sync, { "content-type": "application/json" }, "{}")).status).toBe(202);
  recordScenario({
    scenario: "Cross-site request forgery against a logged-in browser",
    injected: "POST …/sync text/plain from https://evil.example; DELETE from Origin null; PUT JSON from another origin",
    outcome: "403 forbidden_origin; non-JSON bodies 415; connection untouched",
  });
});

test("bull-board errors carry no stack trace or server path, even with NODE_ENV=development", async () => {
  const previous = process.env.NODE_ENV;
  process.env.NODE_ENV = "development"; // bull-board adds error.stack to its answers in development
  try {
    const res = await send("PUT", "/admin/queues/api/queues/sync/pause", { "content-type": "application/json" }, "{not json");
    expect(res.status).toBe(400);
    expect(res.text).not.toContain(process.cwd());
    expect(res.text).not.toContain("node_modules");
    expect(res.text).not.toMatch(/\n\s+at /);
    expect(res.json()).toMatchObject({ error: expect.anything(), message: expect.any(String) });
  } finally {
    process.env.NODE_ENV = previous;
  }
  recordScenario({
    scenario: "bull-board error answer",
    injected: "malformed JSON to a bull-board API route, NODE_ENV=development",
    outcome: "400 {error, message}; no stack, no file paths",
  });
});

/** Loads a page as a logged-in browser; returns every URL it requested and every CSP violation it reported. */
async function load(path: string, ready: (page: Page) => Promise<unknown>) {
  const context = await browser.newContext({ httpCredentials: { username: "support", password: API_TOKEN } });
  const page = await context.newPage();
  const requested: string[] = [];
  page.on("request", (r) => requested.push(r.url()));
  await page.addInitScript(() => {
    const w = window as unknown as { violations: string[] };
    w.violations = [];
    document.addEventListener("securitypolicyviolation", (e) => w.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(origin + path);
  await ready(page);
  await page.waitForLoadState("networkidle");
  const violations = await page.evaluate(() => (window as unknown as { violations: string[] }).violations);
  await context.close();
  return { external: requested.filter((u) => !["127.0.0.1", "localhost", "[::1]"].includes(new URL(u).hostname)), violations, requested };
}

test("bull-board and the support page load in Chromium with no request leaving this machine and nothing blocked", async () => {
  const board = await load("/admin/queues", (page) => page.getByText("verify", { exact: true }).first().waitFor());
  expect(board.external).toEqual([]);
  expect(board.violations).toEqual([]);
  expect(board.requested.length).toBeGreaterThan(3); // its scripts and API calls did run
  const ui = await load("/ui/", (page) => page.waitForSelector("table"));
  expect(ui.external).toEqual([]);
  expect(ui.violations).toEqual([]);
  recordScenario({
    scenario: "Pages load with no internet",
    injected: "Chromium loads /admin/queues and /ui/, watching every request",
    outcome: `0 requests to other hosts (${board.requested.length} + ${ui.requested.length} local); no CSP violation`,
  });
}, 60_000);
