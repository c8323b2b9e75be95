import * as producer from "../../src/producer.js";
import { refreshDeployments } from "../../src/pricing/deployments.js";
import type { Fault } from "../../dev/fake-replicate.js";
import { generatePredictions } from "../../dev/predictions.js";
import { fakeDeployment } from "../support/deployments.js";
import { withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { eventCounts, expectExact, waitForSyncedSince } from "../support/sync-checks.js";

const started = withApi();

const connection = (id: string) => started.h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const deploymentRequests = (token: string) =>
  started.h.fake.requests.filter((r) => r.endpoint === "deployments" && r.authorization === `Bearer ${token}`).length;
const listed = (id: string) => started.api.call("GET", `/v1/connections/${id}/deployments`);
/** No sync job running or waiting: the tick that started a run has finished its deployments read too. */
const syncIdle = () =>
  waitFor(
    "sync queue idle",
    () => started.h.ctx.queues.queue("sync").getJobCounts("active", "waiting", "prioritized"),
    (c) => Object.values(c).every((n) => n === 0),
  );

test("deployments are read when a run starts (all pages), shown per connection, and re-read at most once per UTC day", async () => {
  const token = "r8_deploymentsToken000000000000";
  started.h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 50, days: 3, seed: 3 }));
  started.h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 3, createdAt: "2026-01-10T08:00:00Z", hardware: "gpu-l40s", min: 1, max: 4 }),
    fakeDeployment("acme/llm", { number: 1, createdAt: "2026-02-01T00:00:00Z", hardware: "gpu-h100-2x", min: 0, max: 2 }),
  ]);
  started.h.fake.deploymentPageSize = 1;
  const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-dep", token });
  const first = await waitForSyncedSince(started.h, id, null, 20_000);
  await syncIdle();
  expect(deploymentRequests(token)).toBe(2);
  // Two pages when the first run started; the next run of the same day reads none.
  await producer.syncNow(started.h.ctx, id);
  await waitForSyncedSince(started.h, id, first.lastSyncedAt, 20_000);
  await syncIdle();
  expect(deploymentRequests(token)).toBe(2);
  const { body } = await listed(id);
  expect(body.deployments).toEqual([
    expect.objectContaining({ name: "acme/llm", hardware: "gpu-h100-2x", minInstances: 0, maxInstances: 2, releaseNumber: 1 }),
    expect.objectContaining({
      name: "acme/sdxl-prod",
      hardware: "gpu-l40s",
      minInstances: 1,
      maxInstances: 4,
      effectiveFrom: "2026-01-10",
    }),
  ]);

  // Read yesterday (as far as the run can tell): the next run reads a new release once, the one after
  // it none; the old release stays for the days it applied to.
  started.h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 4, createdAt: "2026-03-01T08:00:00Z", hardware: "gpu-a100-large", min: 2, max: 4 }),
  ]);
  await started.h.ctx.db.connection.update({ where: { id }, data: { deploymentsCheckedAt: new Date(Date.now() - 86_400_000) } });
  let since = (await connection(id)).lastSyncedAt;
  for (const requests of [3, 3]) {
    await producer.syncNow(started.h.ctx, id);
    since = (await waitForSyncedSince(started.h, id, since, 20_000)).lastSyncedAt;
    await syncIdle();
    expect(deploymentRequests(token)).toBe(requests);
  }
  const today = new Date().toISOString().slice(0, 10);
  const releases = await started.h.ctx.db.deployment.findMany({
    where: { connectionId: id, name: "acme/sdxl-prod" },
    orderBy: { releaseNumber: "asc" },
  });
  expect(releases.map((r) => [r.releaseNumber, r.hardware, r.lastSeenOn.toISOString().slice(0, 10)])).toEqual([
    [3, "gpu-l40s", today],
    [4, "gpu-a100-large", today],
  ]);
  expect((await listed(id)).body.deployments).toEqual([
    expect.objectContaining({ name: "acme/llm", lastSeenOn: today }),
    expect.objectContaining({ name: "acme/sdxl-prod", releaseNumber: 4, minInstances: 2 }),
  ]);
  expect((await listed("00000000-0000-4000-8000-000000000000")).status).toBe(404);
});

test("401 and 403 on GET /v1/deployments change nothing but the event log: an optional read never pauses usage", async () => {
  for (const status of [401, 403]) {
    const token = `r8_deploymentsFault${status}0000000000`;
    const truth = generatePredictions({ count: 20, days: 2, seed: status });
    started.h.fake.addAccount(token, { type: "user", username: `u${status}` }, truth);
    started.h.fake.failEvery(token, "deployments", { kind: "status", status });
    const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-dep", token });
    expect(await waitForSyncedSince(started.h, id, null, 20_000)).toMatchObject({ status: "connected" });
    await expectExact(started.h, id, truth);
    await syncIdle();
    const events = await eventCounts(started.h, id);
    expect(events).toMatchObject({ enrichment_failed: 1 });
    expect(events.credential_invalid ?? events.scope_denied).toBeUndefined();
  }
});

test("a deployments next link to another origin is not followed", async () => {
  const token = "r8_deploymentsForeign00000000000";
  started.h.fake.addAccount(token, { type: "user", username: "u" });
  const { id } = await started.h.ctx.db.connection.create({ data: { workspaceId: "ws-dep", status: "connected" } });
  started.h.fake.inject(token, "deployments", { kind: "foreign-next" });
  const before = started.h.fake.requests.length;
  await refreshDeployments(started.h.ctx, id, token);
  expect(started.h.fake.requests.slice(before).every((r) => r.endpoint === "deployments")).toBe(true);
  expect((await connection(id)).deploymentsCheckedAt).toBeNull();
  const [failed] = await started.h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: "enrichment_failed" } });
  expect(failed?.message).toContain("not the configured API origin");
});

test("a deployments read that ends after a disconnect stores nothing", async () => {
  const token = "r8_deploymentsLate00000000000000";
  started.h.fake.addAccount(token, { type: "user", username: "late" });
  started.h.fake.setDeployments(token, [
    fakeDeployment("late/d", { number: 1, createdAt: "2026-01-01T00:00:00Z", hardware: "cpu", min: 1, max: 1 }),
  ]);
  const { id } = await started.h.ctx.db.connection.create({ data: { workspaceId: "ws-dep", status: "connected" } });
  started.h.fake.inject(token, "deployments", { kind: "delay", ms: 1500 });
  const reading = refreshDeployments(started.h.ctx, id, token);
  await waitFor(
    "the deployments request on the wire",
    async () => deploymentRequests(token),
    (n) => n === 1,
  );
  await producer.disconnect(started.h.ctx, id);
  await reading;
  expect((await connection(id)).deploymentsCheckedAt).toBeNull();
  expect(await started.h.ctx.db.deployment.count({ where: { connectionId: id } })).toBe(0);
});

// Deployments only price usage: whatever GET /v1/deployments answers, the usage is read, and the
// failure is one event per streak. The deployment's model is mapped to other hardware (gpu-t4), so
// a deployment row priced by its model instead of its deployment would show.
test.each<[string, Fault, number | null]>([
  ["404", { kind: "status", status: 404 }, 404],
  ["500", { kind: "status", status: 500 }, 500],
  ["a malformed body", { kind: "schema-violation" }, 200],
  ["429s", { kind: "status", status: 429, headers: { "retry-after": "1" } }, 429],
])(
  "deployments answering %s: verified, synced exactly, one enrichment_failed per streak, then enrichment_recovered and priced rows",
  async (label, fault, httpStatus) => {
    const h = started.h;
    const token = `r8_enrichment${label.replace(/\W/g, "")}00000000000`;
    const truth = generatePredictions({ count: 150, days: 3, seed: 19, deploymentModel: "acme/sdxl-prod-model" });
    h.fake.addAccount(token, { type: "organization", username: `enrich-${label.replace(/\W/g, "")}` }, truth);
    h.fake.setDeployments(token, [
      fakeDeployment("acme/sdxl-prod", { number: 1, createdAt: "2025-01-01T00:00:00Z", hardware: "gpu-l40s", min: 0, max: 2 }),
    ]);
    h.fake.failEvery(token, "deployments", fault);
    const mapped = await started.api.call("POST", "/v1/prices/model-hardware", {
      model: "acme/sdxl-prod-model",
      sku: "gpu-t4",
      effectiveFrom: "2025-01-01",
      source: "test",
    });
    expect(mapped.status).toBe(201);

    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-enrich", token });
    const first = await waitForSyncedSince(h, id, null, 20_000);
    await syncIdle();
    await expectExact(h, id, truth);
    expect((await producer.getConnection(h.ctx, id)).health.state).toBe("healthy");
    // A second run tries again and fails again: still one event for the streak.
    await producer.syncNow(h.ctx, id);
    const second = await waitForSyncedSince(h, id, first.lastSyncedAt, 20_000);
    await syncIdle();
    await expectExact(h, id, truth);
    // Once per run, never retried within one.
    expect(deploymentRequests(token)).toBe(2);
    const failed = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: "enrichment_failed" } });
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: "warn", detail: { endpoint: "/v1/deployments", httpStatus } });
    expect(failed[0]!.message).toContain("/v1/deployments");
    if (httpStatus !== 200) expect(failed[0]!.message).toContain(String(httpStatus));
    // The deployments 429s neither delayed the run nor lowered the pace of its requests.
    expect((await eventCounts(h, id)).rate_limited).toBeUndefined();
    expect((await h.ctx.replicate.learnedRate(token))?.requestsPerSecond).toBe(h.config.replicate.requestsPerSecond);
    expect(await deploymentRow(id)).toMatchObject({ costBasis: "unpriced", estimatedCostUsd: "0", pricedPredictions: 0 });

    h.fake.failEvery(token, "deployments", null);
    await producer.syncNow(h.ctx, id);
    await waitForSyncedSince(h, id, second.lastSyncedAt, 20_000);
    await syncIdle();
    expect(await eventCounts(h, id)).toMatchObject({ enrichment_failed: 1, enrichment_recovered: 1 });
    const priced = await deploymentRow(id);
    expect(priced).toMatchObject({ costBasis: "hardware_seconds", pricedShare: "1" });
    // gpu-l40s, the deployment's hardware, not gpu-t4, its model's.
    expect(Number(priced.estimatedCostUsd)).toBeCloseTo(priced.billableSeconds! * 0.000975, 9);
  },
  60_000,
);

async function deploymentRow(connectionId: string) {
  const today = new Date().toISOString().slice(0, 10);
  const from = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  const { rows } = await producer.queryUsage(started.h.ctx, { connectionId, from, to: today, groupBy: ["deployment"] });
  const row = rows.find((r) => r.deployment === "acme/sdxl-prod");
  expect(row).toBeDefined();
  return row!;
}
