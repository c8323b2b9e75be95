import { mkdirSync } from "node:fs";
import AxeBuilder from "@axe-core/playwright";
import type { FastifyInstance } from "fastify";
import type { Browser, Page } from "playwright-core";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { launchChromium } from "../support/browser.js";
import { request } from "../support/api.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";
import { generatePredictions } from "../../dev/predictions.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// The support page, the queue dashboard and /metrics, in a real headless Chromium, with the seven
// customers of issues 12 and 13.

let h: Harness;
let app: FastifyInstance;
let origin: string;
let browser: Browser;
const ids: Record<string, string> = {};

const EXPECTED_STATES: Record<string, string> = {
  healthy: "healthy",
  second: "healthy",
  revoked: "action_required",
  throttled: "throttled",
  empty: "healthy",
  mistyped: "action_required",
  recovered: "healthy",
};

async function connect(name: string, workspaceId: string, token: string) {
  ids[name] = (await producer.connect(h.ctx, { workspaceId, token })).id;
  return ids[name]!;
}

/** Connect, sync, then Replicate stops accepting the token and the next sync hits the 401. */
async function revoke(name: string, workspaceId: string, token: string) {
  const id = await connect(name, workspaceId, token);
  const synced = await waitForSyncedSince(h, id, null);
  h.fake.removeToken(token);
  await producer.syncNow(h.ctx, id);
  await waitFor(
    `${name} paused`,
    () => h.ctx.db.connection.findUniqueOrThrow({ where: { id } }),
    (c) => c.status === "credential_error",
  );
  return synced.lastSyncedAt;
}

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  browser = await launchChromium();
  const account = (username: string, token: string, count: number, type: "user" | "organization" = "organization") =>
    h.fake.addAccount(token, { type, username }, count ? generatePredictions({ count, days: 20, seed: count, idPrefix: username }) : []);
  account("acme-ml", "r8_healthyCustomer000000000", 1_200);
  h.fake.inject("r8_healthyCustomer000000000", "predictions", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  account("acme-research", "r8_secondConnection00000000", 150);
  account("revoked-user", "r8_revokedCustomer000000000", 60, "user");
  account("throttled-org", "r8_throttledCustomer0000000", 1_000);
  const pass = { kind: "delay", ms: 0 } as const;
  h.fake.inject("r8_throttledCustomer0000000", "predictions", pass, pass, {
    kind: "status",
    status: 429,
    headers: { "retry-after": "900" },
  });
  account("empty-user", "r8_emptyCustomer00000000000", 0, "user");
  // Its deployments cannot be read, on every run (a later run must not close the warning): still healthy.
  h.fake.failEvery("r8_emptyCustomer00000000000", "deployments", { kind: "status", status: 404 });
  account("recovered-org", "r8_recoveredOld000000000000", 80);
  await Promise.all([
    connect("healthy", "ws-acme", "r8_healthyCustomer000000000").then((id) => waitForSyncedSince(h, id, null)),
    connect("second", "ws-acme", "r8_secondConnection00000000").then((id) => waitForSyncedSince(h, id, null)),
    revoke("revoked", "ws-revoked", "r8_revokedCustomer000000000"),
    connect("throttled", "ws-throttled", "r8_throttledCustomer0000000").then((id) =>
      waitFor(
        "throttled backfill",
        () => h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: "rate_limited" } }),
        // Windows meeting the local cap the 429 set may add theirs in the same moment: a poll can miss exactly 1.
        (n) => n >= 1,
      ),
    ),
    connect("empty", "ws-empty", "r8_emptyCustomer00000000000").then(async (id) => {
      await waitForSyncedSince(h, id, null);
      await waitFor(
        "deployments read failed",
        () => h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: "enrichment_failed" } }),
        (n) => n === 1,
      );
    }),
    connect("mistyped", "ws-typo", "r8_notWhatTheyCopied0000000").then((id) =>
      waitFor(
        "mistyped token rejected",
        () => h.ctx.db.connection.findUniqueOrThrow({ where: { id } }),
        (c) => c.status === "credential_error",
      ),
    ),
    revoke("recovered", "ws-recovered", "r8_recoveredOld000000000000").then(async (before) => {
      account("recovered-org", "r8_recoveredNew000000000000", 80);
      await producer.replaceToken(h.ctx, ids.recovered!, "r8_recoveredNew000000000000");
      await waitForSyncedSince(h, ids.recovered!, before);
    }),
  ]);
  mkdirSync(".artifacts", { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await h?.close();
});

/** A page with the support credentials; problems (failed requests, script errors, HTTP errors) are collected. */
async function open(path: string, width = 1400) {
  const context = await browser.newContext({
    httpCredentials: { username: "support", password: API_TOKEN },
    viewport: { width, height: 900 },
  });
  const page = await context.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on("requestfailed", (r) => problems.push(r.url()));
  page.on("pageerror", (err) => problems.push(String(err)));
  page.on("request", (r) => requests.push(new URL(r.url()).pathname));
  page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  await page.goto(origin + path);
  await page.waitForSelector("body[data-ready=true]", { timeout: 10_000 }).catch((err) => {
    throw new Error(`${err}\npage problems: ${problems.join("\n")}`);
  });
  return { page, problems, requests, close: () => context.close() };
}

const openDetail = (page: Page, id: string) => page.waitForSelector(`#detail:not([hidden]) #detail-link[href="#/connections/${id}"]`);

async function expectAccessible(page: Page, where: string) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect([where, serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)]).toEqual([where, []]);
}

test("without the API token the pages ask the browser for it; with it they load", async () => {
  for (const path of ["/ui/", "/admin/queues"]) {
    const anonymous = await fetch(origin + path);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
  }
  const basic = `Basic ${Buffer.from(`support:${API_TOKEN}`).toString("base64")}`;
  const page = await fetch(`${origin}/ui/`, { headers: { authorization: basic } });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("/ui/vendor/chart/chart.umd.min.js");
  const chart = await fetch(`${origin}/ui/vendor/chart/chart.umd.min.js`, { headers: { authorization: basic } });
  expect(chart.status).toBe(200);
  const dashboard = await fetch(`${origin}/admin/queues`, { headers: { authorization: basic } });
  expect(dashboard.status).toBe(200);
  expect(await dashboard.text()).toMatch(/bull/i);
});

test("the list shows the seven customers' health from one request; each one's detail says what to tell the customer", async () => {
  const { page, problems, requests, close } = await open("/ui/");
  expect(requests.filter((p) => p.startsWith("/v1/"))).toEqual(["/v1/connections"]);
  const rows = await page
    .locator("#connections tbody tr")
    .evaluateAll((trs) => Object.fromEntries(trs.map((tr) => [tr.getAttribute("data-id"), tr.getAttribute("data-state")])));
  expect(rows).toEqual(Object.fromEntries(Object.entries(EXPECTED_STATES).map(([name, s]) => [ids[name], s])));
  await expectAccessible(page, "list at 1400 px");

  for (const [name, expected] of Object.entries(EXPECTED_STATES)) {
    await page.click(`#connections tbody tr[data-id="${ids[name]}"]`);
    await openDetail(page, ids[name]!);
    await page.waitForSelector(`#health-state.${expected}`);
    // A warning names the HTTP status of the read that failed; the rest says no protocol detail.
    const warnings = await page.locator("#health-warnings").innerText();
    const text = await page.locator("#health").innerText();
    expect(text.replace(warnings, "")).not.toMatch(/\(HTTP \d+\)|Unauthorized|\d pages/);
    const action = page.locator("#health-action");
    const currentError = page.locator("#health-error");
    if (expected === "action_required") {
      expect(await action.innerText()).toMatch(
        name === "mistyped" ? /copy the token again/ : /new API token in the Replicate organization/,
      );
      expect(await currentError.innerText()).toMatch(/Current error: Replicate rejected the token/);
    } else {
      expect(await action.isHidden()).toBe(true);
      expect(await currentError.isHidden()).toBe(true); // the recovered one's old 401 is not current
    }
    if (name === "empty")
      expect(warnings).toMatch(/^Warning: Deployments could not be read from Replicate \(HTTP 404\); usage still syncs;/);
    else expect(warnings).toBe("");
    if (expected === "throttled") {
      expect(text).toMatch(/retrying at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
      expect(Number(await page.locator("#health-progress").getAttribute("value"))).toBeGreaterThan(0);
      await page.waitForSelector("body[data-usage=ready]");
      expect(await page.locator("#coverage-warning").innerText()).toMatch(/Backfill incomplete/);
      expect(await page.locator("#usage-table tr.not-synced").count()).toBeGreaterThan(0);
    }
    await page.waitForSelector("body[data-usage=ready]");
    await page.screenshot({ path: `.artifacts/support-${name}-${expected}.png`, fullPage: true });
  }
  await expectAccessible(page, "detail at 1400 px");

  await page.selectOption("#filters [name=state]", "action_required");
  await page.click("#filters button");
  await page.waitForFunction(() => document.querySelectorAll("#connections tbody tr").length === 2);
  await page.selectOption("#filters [name=state]", "");
  await page.fill("#filters [name=q]", "ws-acme");
  await page.click("#filters button");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#connections tbody tr")].every((tr) => tr.textContent!.includes("ws-acme")),
  );
  expect(await page.locator("#connections tbody tr").count()).toBe(2);
  expect(problems).toEqual([]);
  await close();
});

test("one connection: event log in UTC (filterable), usage by status in status colours, compute seconds, totals and a data table", async () => {
  const { page, problems, close } = await open(`/ui/#/connections/${ids.healthy}`);
  await openDetail(page, ids.healthy!);
  await page.waitForSelector("#events li");
  const kinds = await page.locator("#events li").evaluateAll((items) => items.map((i) => i.getAttribute("data-kind")));
  expect(kinds[0]).toBe("sync_completed"); // newest first
  expect(kinds).toEqual(expect.arrayContaining(["rate_limited", "verified", "connected"]));
  expect(await page.locator("#events li time").first().innerText()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  await page.waitForSelector("body[data-usage=ready]");
  expect(Number(await page.locator("#usage-chart").getAttribute("data-points"))).toBeGreaterThan(0);
  expect(await page.locator("#usage-totals").innerText()).toMatch(/1,200 predictions, [\d,.]+ compute seconds/);
  const painted = await page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>("#usage-chart")!;
    const pixels = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) n++;
    return n;
  });
  expect(painted).toBeGreaterThan(5_000);

  const datasets = () =>
    page.evaluate(() =>
      Object.fromEntries(
        (
          window as unknown as { Chart: { getChart(c: Element): { data: { datasets: { label: string; backgroundColor: string }[] } } } }
        ).Chart.getChart(document.querySelector("#usage-chart")!)!.data.datasets.map((d) => [d.label, d.backgroundColor]),
      ),
    );
  const byModel = await datasets();
  await page.selectOption("#usage-form [name=by]", "status");
  await page.click("#usage-form button");
  await page.waitForFunction(() => document.querySelector("#usage-status")!.textContent!.includes("by status"));
  expect(await datasets()).toMatchObject({ succeeded: "#1a7f37", failed: "#cf222e" });

  // The same model has the same colour on another customer's page.
  await page.selectOption("#usage-form [name=by]", "model");
  await page.selectOption("#usage-form [name=measure]", "computeSeconds");
  await page.goto(`${origin}/ui/#/connections/${ids.second}`);
  await openDetail(page, ids.second!);
  await page.waitForSelector("body[data-usage=ready]");
  const other = await datasets();
  const shared = Object.keys(other).filter((m) => m in byModel && m !== "not synced yet");
  expect(shared.length).toBeGreaterThan(0);
  for (const m of shared) expect(other[m]).toBe(byModel[m]);
  await page.click("#usage-table-details summary");
  expect(await page.locator("#usage-table tbody tr").count()).toBe(30);
  expect(await page.locator("#usage-table thead").innerText()).toMatch(/Day \(UTC\)/);

  await page.selectOption("#events-form [name=kind]", "sync_completed");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#events li")].every((li) => li.getAttribute("data-kind") === "sync_completed"),
  );
  expect(problems).toEqual([]);
  await close();
});

test("estimated cost: chartable by model, totals and table labelled as an estimate with its basis and the API's note", async () => {
  // An operator maps one public model to its hardware, so part of the usage is priced and the rest is not.
  const mapped = await request(origin, "POST", "/v1/prices/model-hardware", {
    model: "stability-ai/sdxl",
    sku: "gpu-a40-large",
    effectiveFrom: "2025-01-01",
    source: "support page test",
  });
  expect(mapped.status).toBeLessThan(300);
  const { page, problems, close } = await open(`/ui/#/connections/${ids.healthy}`);
  await openDetail(page, ids.healthy!);
  await page.waitForSelector("body[data-usage=ready]");
  await page.selectOption("#usage-form [name=measure]", "estimatedCostUsd");
  await page.click("#usage-form button");
  await page.waitForFunction(
    () => document.querySelector("#usage-chart")?.closest("#chart-box:not([hidden])") && document.body.dataset.usage === "ready",
  );
  expect(Number(await page.locator("#usage-chart").getAttribute("data-points"))).toBeGreaterThan(0);
  expect(await page.locator("#usage-totals [data-line=cost]").innerText()).toMatch(
    /^Estimated cost \(an estimate, not an invoice\): ≈ \$[\d,.]+ estimated \(hardware seconds[^)]*\); \d+ % of predictions unpriced\.$/,
  );
  expect(await page.locator("#usage-cost-note").innerText()).toMatch(/estimate from this service's price book/);
  await page.click("#usage-table-details summary");
  expect(await page.locator("#usage-table thead").innerText()).toMatch(/Total estimated cost \(USD\)/);
  await expectAccessible(page, "estimated cost at 1400 px");
  await page.screenshot({ path: ".artifacts/support-estimated-cost.png", fullPage: true });

  // By status there is no cost to chart: the page says so instead of drawing zeros.
  await page.selectOption("#usage-form [name=by]", "status");
  await page.click("#usage-form button");
  await page.waitForSelector("body[data-usage=error]");
  expect(await page.locator("#usage-error").innerText()).toMatch(/Estimated cost is not recorded per status/);
  expect(problems).toEqual([]);
  await close();
});

test("keyboard: Tab reaches a row and Enter opens it; a bad range shows the API's 400 and clears the old chart", async () => {
  const { page, close } = await open("/ui/");
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(() => document.activeElement?.matches("#connections tbody tr"))) break;
  }
  const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-id"));
  expect(Object.values(ids)).toContain(focused);
  await page.keyboard.press("Enter");
  await openDetail(page, focused!);
  expect(page.url()).toBe(`${origin}/ui/#/connections/${focused}`);
  await page.waitForSelector("body[data-usage=ready]");

  await page.fill("#usage-form [name=from]", "2026-02-10");
  await page.fill("#usage-form [name=to]", "2026-02-01");
  await page.click("#usage-form button");
  await page.waitForSelector("body[data-usage=error]");
  expect(await page.locator("#usage-error").innerText()).toMatch(/from must not be after to/);
  expect(await page.locator("#chart-box").isHidden()).toBe(true);
  expect(await page.locator("#usage-table tr").count()).toBe(0);
  await page.screenshot({ path: ".artifacts/support-bad-range.png", fullPage: true });
  await close();
});

test("at 390 px: no horizontal scroll, a usable chart, no serious accessibility violations", async () => {
  const { page, problems, close } = await open("/ui/", 390);
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(await overflow()).toBe(0);
  await expectAccessible(page, "list at 390 px");
  await page.screenshot({ path: ".artifacts/support-390-list.png", fullPage: true });
  await page.goto(`${origin}/ui/#/connections/${ids.throttled}`);
  await openDetail(page, ids.throttled!);
  await page.waitForSelector("body[data-usage=ready]");
  expect(await overflow()).toBe(0);
  expect((await page.locator("#usage-chart").boundingBox())!.height).toBeGreaterThanOrEqual(250);
  await expectAccessible(page, "detail at 390 px");
  await page.screenshot({ path: ".artifacts/support-390-detail.png", fullPage: true });
  expect(problems).toEqual([]);
  await close();
});

test("GET /metrics: queue depth, job durations, 429 count and last-sync age in Prometheus text format", async () => {
  const { status, headers, text } = await request(origin, "GET", "/metrics");
  expect(status).toBe(200);
  expect(headers.get("content-type")).toMatch(/^text\/plain/);
  expect(text).toMatch(/^rus_queue_jobs\{queue="sync",state="waiting"\} \d+$/m);
  expect(text).toMatch(/^rus_job_duration_seconds_count\{queue="sync",name="slice",outcome="completed"\} [1-9]\d*$/m);
  expect(text).toMatch(/^rus_replicate_rate_limited_total\{source="header"\} 2$/m);
  for (const name of ["healthy", "throttled"]) {
    expect(text).toMatch(
      new RegExp(`^rus_connection_last_sync_age_seconds\\{connection_id="${ids[name]}",workspace_id="ws-[a-z]+"\\} [\\d.]+$`, "m"),
    );
  }
  expect(text).toMatch(/^rus_connections\{status="credential_error"\} 2$/m);
  expect((await fetch(`${origin}/metrics`)).status).toBe(401);
});
