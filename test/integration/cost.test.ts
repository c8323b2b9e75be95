import { spawnSync } from "node:child_process";
import { Decimal } from "decimal.js";
import * as producer from "../../src/producer.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { generatePredictions } from "../../dev/predictions.js";
import { fakeDeployment } from "../support/deployments.js";
import { withApi } from "../support/api.js";
import { waitForDeploymentsRead, waitForSyncedSince } from "../support/sync-checks.js";

// The expected cost is computed here, independently of the SQL, with decimal arithmetic from the
// fake's ground truth and the prices this test records, and compared exactly.

const started = withApi();
const call = (method: "GET" | "POST", url: string, payload?: object) => started.api.call(method, url, payload);

const DAY = 86_400_000;
const day = (t: number) => new Date(t).toISOString().slice(0, 10);
const now = Date.now();
const today = day(now);
const first = day(now - 10 * DAY);
const mid = day(now - 5 * DAY);

type Prices = Record<string, { from: string; usd: string }[]>;
// The seeded published prices this test relies on (replicate.com/pricing), plus what it records below.
const hardware: Prices = {
  "gpu-l40s": [{ from: "2025-01-01", usd: "0.000975" }],
  "gpu-a40-large": [{ from: "2025-01-01", usd: "0.000725" }],
  "gpu-t4": [{ from: "2025-01-01", usd: "0.000225" }],
};
const modelPrices: Prices = {
  "meta/meta-llama-3-70b-instruct|input_token": [{ from: "2025-01-01", usd: "0.00000065" }],
  "meta/meta-llama-3-70b-instruct|output_token": [{ from: "2025-01-01", usd: "0.00000275" }],
  "black-forest-labs/flux-schnell|prediction": [{ from: "2025-01-01", usd: "0.003" }],
};
const modelSku: Record<string, string> = { "stability-ai/sdxl": "gpu-a40-large", "acme/aborted-only": "gpu-t4" };
const DEPLOYMENT = { name: "acme/sdxl-prod", from: "2025-06-01", hardware: "gpu-l40s", min: 1 };

const at = (list: { from: string; usd: string }[] | undefined, d: string) =>
  list
    ?.filter((p) => p.from <= d)
    .sort((a, b) => a.from.localeCompare(b.from))
    .at(-1)?.usd;

/** One prediction's cost and basis, by the rules the README states. */
function priced(p: FakePrediction): { basis: string; usd: Decimal } {
  const d = p.created_at.slice(0, 10);
  const billable = new Decimal(p.status === "aborted" ? 0 : (p.metrics?.predict_time ?? 0)).toDecimalPlaces(6);
  const tokens = (n: number | null | undefined) => new Decimal(p.status === "aborted" ? 0 : (n ?? 0));
  const perSecond = (sku: string) => at(hardware[sku], d);
  if (p.deployment) {
    const usd = perSecond(DEPLOYMENT.hardware);
    return usd ? { basis: "hardware_seconds", usd: billable.times(usd) } : { basis: "unpriced", usd: new Decimal(0) };
  }
  const input = at(modelPrices[`${p.model}|input_token`], d);
  const output = at(modelPrices[`${p.model}|output_token`], d);
  if (input || output) {
    const usd = tokens(p.metrics?.input_token_count)
      .times(input ?? 0)
      .plus(tokens(p.metrics?.output_token_count).times(output ?? 0));
    return { basis: "tokens", usd };
  }
  const perOutput = at(modelPrices[`${p.model}|prediction`], d);
  if (perOutput) return { basis: "outputs", usd: new Decimal(p.status === "succeeded" ? perOutput : 0) };
  const sku = modelSku[p.model ?? ""];
  const usd = sku ? perSecond(sku) : undefined;
  return usd ? { basis: "hardware_seconds", usd: billable.times(usd) } : { basis: "unpriced", usd: new Decimal(0) };
}

function expectedRows(truth: FakePrediction[]) {
  const rows = new Map<string, { usd: Decimal; bases: Set<string>; n: number; priced: number }>();
  for (const p of truth) {
    const key = `${p.created_at.slice(0, 10)}|${p.model ?? ""}|${p.deployment ?? ""}`;
    const row = rows.get(key) ?? { usd: new Decimal(0), bases: new Set<string>(), n: 0, priced: 0 };
    const c = priced(p);
    row.usd = row.usd.plus(c.usd);
    row.bases.add(c.basis);
    row.n++;
    if (c.basis !== "unpriced") row.priced++;
    rows.set(key, row);
  }
  return Object.fromEntries(
    [...rows].map(([key, r]) => [
      key,
      {
        estimatedCostUsd: r.usd.toFixed(),
        costBasis: r.bases.size === 1 ? [...r.bases][0] : "mixed",
        pricedShare: new Decimal(r.priced).dividedBy(r.n).toDecimalPlaces(4).toFixed(),
      },
    ]),
  );
}

async function actualRows(id: string) {
  const res = await call("GET", `/v1/usage?connectionId=${id}&from=${first}&to=${today}&groupBy=date,model,deployment`);
  expect(res.status).toBe(200);
  return {
    body: res.body,
    rows: Object.fromEntries(
      (res.body.rows as Record<string, string>[]).map((r) => [
        `${r.date}|${r.model}|${r.deployment}`,
        { estimatedCostUsd: r.estimatedCostUsd, costBasis: r.costBasis, pricedShare: r.pricedShare },
      ]),
    ),
  };
}

async function record(path: string, body: object) {
  const res = await call("POST", `/v1/prices/${path}`, { source: "cost.test", ...body });
  expect(res.status).toBe(201);
}

test("estimated cost per daily row equals an independent decimal computation, and follows price changes by effective date", async () => {
  const token = "r8_costToken000000000000000000000";
  const abortedOnly: FakePrediction = {
    id: "aborted-1",
    status: "aborted",
    created_at: new Date(now - 2 * DAY).toISOString(),
    model: "acme/aborted-only",
    metrics: { predict_time: 12.5 },
  };
  const truth = [...generatePredictions({ count: 400, days: 10, seed: 21, end: new Date(now - 60_000) }), abortedOnly];
  started.h.fake.addAccount(token, { type: "organization", username: "acme" }, truth);
  started.h.fake.setDeployments(token, [
    fakeDeployment(DEPLOYMENT.name, {
      number: 1,
      createdAt: `${DEPLOYMENT.from}T09:00:00Z`,
      hardware: DEPLOYMENT.hardware,
      min: DEPLOYMENT.min,
      max: 3,
    }),
    fakeDeployment("acme/scale-to-zero", { number: 2, createdAt: "2025-06-01T00:00:00Z", hardware: "gpu-h100", min: 0, max: 1 }),
  ]);
  for (const [key, [p]] of Object.entries(modelPrices)) {
    const [model, unit] = key.split("|");
    await record("models", { model, unit, usdPerUnit: p!.usd, effectiveFrom: p!.from });
  }
  for (const [model, sku] of Object.entries(modelSku)) await record("model-hardware", { model, sku, effectiveFrom: "2025-01-01" });

  const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-cost", token });
  await waitForSyncedSince(started.h, id, null, 20_000);
  await waitForDeploymentsRead(started.h, id);
  const before = await actualRows(id);
  expect(before.rows).toEqual(expectedRows(truth));
  expect(before.body.costNote).toMatch(/estimate/);
  expect(before.body.deployments).toEqual([
    expect.objectContaining({ connectionId: id, name: "acme/scale-to-zero", hardware: "gpu-h100", minInstances: 0 }),
    expect.objectContaining({ connectionId: id, name: DEPLOYMENT.name, hardware: DEPLOYMENT.hardware, minInstances: 1, maxInstances: 3 }),
  ]);
  // Every basis occurs, an unpriced public model is reported as such, aborted costs nothing.
  const bases = new Set(Object.values(before.rows).map((r) => r.costBasis));
  expect([...bases].sort()).toEqual(["hardware_seconds", "outputs", "tokens", "unpriced"]);
  const whisper = Object.entries(before.rows).filter(([k]) => k.endsWith("|openai/whisper|"));
  expect(whisper.length).toBeGreaterThan(0);
  for (const [, r] of whisper) expect(r).toEqual({ estimatedCostUsd: "0", costBasis: "unpriced", pricedShare: "0" });
  expect(before.rows[`${day(now - 2 * DAY)}|acme/aborted-only|`]).toEqual({
    estimatedCostUsd: "0",
    costBasis: "hardware_seconds",
    pricedShare: "1",
  });

  // A price change effective mid-range: days before keep the old price, days from it use the new one.
  hardware["gpu-a40-large"]!.push({ from: mid, usd: "0.000800" });
  await record("hardware", { sku: "gpu-a40-large", usdPerSecond: "0.000800", effectiveFrom: mid });
  const after = await actualRows(id);
  expect(after.rows).toEqual(expectedRows(truth));
  const changed = Object.keys(after.rows).filter((k) => after.rows[k]!.estimatedCostUsd !== before.rows[k]!.estimatedCostUsd);
  expect(changed.length).toBeGreaterThan(0);
  expect(changed.every((k) => k >= mid && k.includes("|stability-ai/sdxl|"))).toBe(true);

  // The idle floor: one line per day the deployment existed, min_instances × price × 86 400 s; none for scale-to-zero.
  const perDay = new Decimal(DEPLOYMENT.min).times(86_400).times(at(hardware[DEPLOYMENT.hardware], today)!).toFixed();
  const days = Array.from({ length: 11 }, (_, i) => day(now - (10 - i) * DAY));
  expect(after.body.idleFloor).toEqual(
    days.map((date) => ({
      line: "idle_floor",
      date,
      model: `acme/sdxl-prod-model`,
      deployment: DEPLOYMENT.name,
      instanceSeconds: 86_400,
      estimatedCostUsd: perDay,
      costBasis: "hardware_seconds",
    })),
  );

  // The CSV holds both kinds of line, labelled, with the cost columns.
  const csv = String((await call("GET", `/v1/usage?connectionId=${id}&from=${first}&to=${today}&groupBy=deployment&format=csv`)).body);
  const [header, ...lines] = csv.trim().split("\n");
  expect(header!.split(",")).toEqual(
    expect.arrayContaining(["line", "deployment", "estimatedCostUsd", "costBasis", "pricedShare", "instanceSeconds"]),
  );
  const idle = lines.filter((l) => l.startsWith("idle_floor,"));
  expect(idle).toHaveLength(1);
  expect(idle[0]).toContain(new Decimal(perDay).times(days.length).toFixed());
});

test("the price book: decimal strings only, history kept, prices in force by date", async () => {
  expect(
    (await call("POST", "/v1/prices/hardware", { sku: "gpu-x", usdPerSecond: 0.001, effectiveFrom: "2026-01-01", source: "s" })).status,
  ).toBe(400);
  expect(
    (await call("POST", "/v1/prices/hardware", { sku: "gpu-x", usdPerSecond: "-1", effectiveFrom: "2026-01-01", source: "s" })).status,
  ).toBe(400);
  expect(
    (await call("POST", "/v1/prices/models", { model: "a/b", unit: "image", usdPerUnit: "1", effectiveFrom: "2026-01-01", source: "s" }))
      .status,
  ).toBe(400);
  await record("hardware", { sku: "gpu-x", usdPerSecond: "0.001000", effectiveFrom: "2026-01-01" });
  await record("hardware", { sku: "gpu-x", usdPerSecond: "0.002", effectiveFrom: "2026-03-01" });
  await record("hardware", { sku: "gpu-x", usdPerSecond: "0.0015", effectiveFrom: "2026-01-01" }); // a correction
  const priceOf = async (asOf: string) =>
    ((await call("GET", `/v1/prices?asOf=${asOf}`)).body.hardware as { sku: string; usdPerSecond: string }[]).find((p) => p.sku === "gpu-x")
      ?.usdPerSecond;
  expect(await priceOf("2025-12-31")).toBeUndefined();
  expect(await priceOf("2026-02-01")).toBe("0.0015");
  expect(await priceOf("2026-03-01")).toBe("0.002");
  expect(await priceOf("2026-01-01")).not.toBeUndefined();
  // A model mapped to hardware the price book has no price for (that day) would stay unpriced: refused, naming it.
  const mapTo = (sku: string | null, effectiveFrom: string) =>
    call("POST", "/v1/prices/model-hardware", { model: "acme/mapped", sku, effectiveFrom, source: "s" });
  for (const [sku, from] of [
    ["gpu-nowhere", "2026-01-01"],
    ["gpu-x", "2025-12-31"],
  ] as const) {
    const refused = await mapTo(sku, from);
    expect([refused.status, refused.body.error, refused.body.issues]).toEqual([
      400,
      "validation_failed",
      [expect.stringMatching(/^sku: /)],
    ]);
    expect(refused.body.issues[0]).toContain(`${sku} on ${from}`);
  }
  expect((await mapTo("gpu-x", "2026-01-01")).status).toBe(201);
  expect((await mapTo(null, "2026-02-01")).status).toBe(201);
  const history = (await call("GET", "/v1/prices/history")).body.hardware as { sku: string; usdPerSecond: string }[];
  expect(history.filter((p) => p.sku === "gpu-x").map((p) => p.usdPerSecond)).toEqual(["0.0015", "0.002", "0.001"]);
  expect(
    history
      .filter((p) => p.sku.startsWith("gpu-h100"))
      .map((p) => p.usdPerSecond)
      .sort(),
  ).toEqual(["0.001525", "0.00305", "0.0061", "0.0122"]);
  await expect(started.h.ctx.db.$executeRawUnsafe("UPDATE hardware_prices SET usd_per_second = 0")).rejects.toThrow(/append-only/);
});

test("npm run prices: the CLI records and lists prices with the API's validation", () => {
  const cli = (...args: string[]) =>
    spawnSync("node_modules/.bin/tsx", ["src/cli/prices.ts", ...args], {
      env: { ...process.env, DATABASE_URL: started.h.t.url, NODE_ENV: "development" },
      encoding: "utf8",
    });
  const set = cli("set-model", "acme/cli-model", "prediction", "0.0125", "--from", "2026-04-01", "--source", "cli test");
  expect(set.status).toBe(0);
  expect(JSON.parse(set.stdout)).toMatchObject({
    model: "acme/cli-model",
    unit: "prediction",
    usdPerUnit: "0.0125",
    effectiveFrom: "2026-04-01",
  });
  const listed = JSON.parse(cli("list", "--as-of", "2026-04-01").stdout);
  expect(listed.models).toEqual(expect.arrayContaining([expect.objectContaining({ model: "acme/cli-model", usdPerUnit: "0.0125" })]));
  expect(JSON.parse(cli("list", "--as-of", "2026-03-31").stdout).models).not.toEqual(
    expect.arrayContaining([expect.objectContaining({ model: "acme/cli-model" })]),
  );
  const bad = cli("set-hardware", "gpu-l40s", "0.5e-3", "--source", "x");
  expect(bad.status).toBe(2);
  expect(bad.stdout).toBe("");
  const unknownSku = cli("map-model", "acme/cli-model", "gpu-nowhere", "--from", "2026-04-01", "--source", "x");
  expect([unknownSku.status, unknownSku.stdout]).toEqual([2, ""]);
  expect(unknownSku.stderr).toContain("gpu-nowhere on 2026-04-01");
});
