import { mkdirSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Browser } from "playwright-core";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { launchChromium } from "../support/browser.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";
import { generatePredictions } from "../../dev/predictions.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// The support page, the queue dashboard and /metrics, in a real headless Chromium.

let h: Harness;
let app: FastifyInstance;
let origin: string;
let browser: Browser;
let connectionId: string;

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  browser = await launchChromium();
  const token = "r8_supportPageToken000000000000";
  h.fake.addAccount(token, { type: "organization", username: "acme-ml" }, generatePredictions({ count: 1_200, days: 20, seed: 31 }));
  h.fake.inject(token, "predictions", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  connectionId = (await producer.connect(h.ctx, { workspaceId: "ws-support", token })).id;
  await waitForSyncedSince(h, connectionId, null);
  // A second connection whose token is rejected, so the list shows more than one state.
  await producer.connect(h.ctx, { workspaceId: "ws-revoked", token: "r8_notKnownToTheFake000000" });
  await waitFor(
    "credential error",
    () => h.ctx.db.connection.count({ where: { status: "credential_error" } }),
    (n) => n === 1,
  );
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await h.close();
});

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

test("the support page lists connections and shows one's event log (filterable) and a non-empty usage chart", async () => {
  const context = await browser.newContext({
    httpCredentials: { username: "support", password: API_TOKEN },
    viewport: { width: 1400, height: 1000 },
  });
  const page = await context.newPage();
  const failed: string[] = [];
  page.on("requestfailed", (r) => failed.push(r.url()));
  page.on("pageerror", (err) => failed.push(String(err)));
  page.on("response", (r) => r.status() >= 400 && failed.push(`${r.status()} ${r.url()}`));
  await page.goto(`${origin}/ui/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 10_000 }).catch((err) => {
    throw new Error(`${err}\npage problems: ${failed.join("\n")}`);
  });
  const rows = page.locator("#connections tbody tr");
  expect(await rows.count()).toBe(2);
  await expect(page.locator("#connections").innerText()).resolves.toMatch(/credential error/);

  await page.click(`#connections tbody tr[data-id="${connectionId}"]`);
  await page.waitForSelector("#events li");
  const kinds = await page.locator("#events li").evaluateAll((items) => items.map((i) => i.getAttribute("data-kind")));
  expect(kinds[0]).toBe("sync_completed"); // newest first
  expect(kinds).toEqual(expect.arrayContaining(["rate_limited", "verified", "connected"]));
  await page.waitForFunction(() => Number(document.querySelector("#usage-chart")?.getAttribute("data-points")) > 0);
  // The chart really drew: some canvas pixels are not blank.
  const painted = await page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>("#usage-chart")!;
    const pixels = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) n++;
    return n;
  });
  expect(painted).toBeGreaterThan(5_000);
  mkdirSync(".artifacts", { recursive: true });
  const shot = await page.screenshot({ path: ".artifacts/support-page.png", fullPage: true });
  expect(shot.length).toBeGreaterThan(20_000);

  await page.selectOption("#events-form [name=kind]", "rate_limited");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#events li")].every((li) => li.getAttribute("data-kind") === "rate_limited"),
  );
  expect(await page.locator("#events li").first().innerText()).toMatch(/retry after 1s/);

  // By status, over a range with no data: an empty chart says so.
  await page.selectOption("#usage-form [name=by]", "status");
  await page.fill("#usage-form [name=from]", "2001-01-01");
  await page.fill("#usage-form [name=to]", "2001-01-31");
  await page.click("#usage-form button");
  await page.waitForSelector("#usage-empty:not([hidden])");
  expect(failed).toEqual([]);
  await context.close();
});

test("GET /metrics: queue depth, job durations, 429 count and last-sync age in Prometheus text format", async () => {
  const res = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  const text = await res.text();
  expect(text).toMatch(/^rus_queue_jobs\{queue="sync",state="waiting"\} \d+$/m);
  expect(text).toMatch(/^rus_job_duration_seconds_count\{queue="sync",name="page",outcome="completed"\} [1-9]\d*$/m);
  expect(text).toMatch(/^rus_replicate_rate_limited_total\{source="header"\} 1$/m);
  expect(text).toMatch(
    new RegExp(`^rus_connection_last_sync_age_seconds\\{connection_id="${connectionId}",workspace_id="ws-support"\\} [\\d.]+$`, "m"),
  );
  expect(text).toMatch(/^rus_connections\{status="credential_error"\} 1$/m);
  expect((await fetch(`${origin}/metrics`)).status).toBe(401);
});
