import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import { ForeignLinkError } from "../../src/errors.js";
import * as producer from "../../src/producer.js";
import { refreshDeployments } from "../../src/pricing/deployments.js";
import { generatePredictions } from "../../dev/predictions.js";
import { fakeDeployment } from "../support/deployments.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";

let h: Harness;
let app: FastifyInstance;
let origin: string;

beforeAll(async () => {
  h = await createHarness();
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await app.close();
  await h.close();
});

const connection = (id: string) => h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const deploymentRequests = (token: string) =>
  h.fake.requests.filter((r) => r.endpoint === "deployments" && r.authorization === `Bearer ${token}`).length;
async function listed(id: string) {
  const res = await fetch(`${origin}/v1/connections/${id}/deployments`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  return { status: res.status, body: await res.json() };
}

test("deployments are read at verification (all pages), shown per connection, and re-read at most once per UTC day", async () => {
  const token = "r8_deploymentsToken000000000000";
  h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 50, days: 3, seed: 3 }));
  h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 3, createdAt: "2026-01-10T08:00:00Z", hardware: "gpu-l40s", min: 1, max: 4 }),
    fakeDeployment("acme/llm", { number: 1, createdAt: "2026-02-01T00:00:00Z", hardware: "gpu-h100-2x", min: 0, max: 2 }),
  ]);
  h.fake.deploymentPageSize = 1;
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-dep", token });
  await waitFor(
    "synced",
    () => connection(id),
    (c) => c.lastSyncedAt !== null,
  );
  // Two pages at verification; the sync pages of the same day read nothing more.
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

  // The next UTC day: a new release is read once; the old release stays for the days it applied to.
  h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 4, createdAt: "2026-03-01T08:00:00Z", hardware: "gpu-a100-large", min: 2, max: 4 }),
  ]);
  const tomorrow = new Date(Date.now() + 86_400_000);
  await refreshDeployments(h.ctx, id, token, { now: tomorrow });
  await refreshDeployments(h.ctx, id, token, { now: tomorrow });
  expect(deploymentRequests(token)).toBe(3);
  const releases = await h.ctx.db.deployment.findMany({
    where: { connectionId: id, name: "acme/sdxl-prod" },
    orderBy: { releaseNumber: "asc" },
  });
  expect(releases.map((r) => [r.releaseNumber, r.hardware, r.lastSeenOn.toISOString().slice(0, 10)])).toEqual([
    [3, "gpu-l40s", tomorrow.toISOString().slice(0, 10)],
    [4, "gpu-a100-large", tomorrow.toISOString().slice(0, 10)],
  ]);
  expect((await listed(id)).body.deployments).toEqual([
    expect.objectContaining({ name: "acme/llm", lastSeenOn: new Date().toISOString().slice(0, 10) }),
    expect.objectContaining({ name: "acme/sdxl-prod", releaseNumber: 4, minInstances: 2 }),
  ]);
  expect((await listed("00000000-0000-4000-8000-000000000000")).status).toBe(404);
});

test("401 and 403 on GET /v1/deployments pause the connection; a 429 only delays verification", async () => {
  for (const [status, expected] of [
    [401, "credential_invalid"],
    [403, "scope_denied"],
  ] as const) {
    const token = `r8_deploymentsFault${status}0000000000`;
    h.fake.addAccount(token, { type: "user", username: "u" });
    h.fake.inject(token, "deployments", { kind: "status", status });
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-dep", token });
    await waitFor(
      `status after ${status}`,
      () => connection(id),
      (c) => c.status === "credential_error",
    );
    expect(await h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: expected } })).toBe(1);
  }

  const token = "r8_deploymentsThrottled000000000";
  h.fake.addAccount(token, { type: "user", username: "u" });
  h.fake.setDeployments(token, [fakeDeployment("u/d", { number: 1, createdAt: "2026-01-01T00:00:00Z", hardware: "cpu", min: 0, max: 1 })]);
  h.fake.inject(token, "deployments", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-dep", token });
  await waitFor(
    "verified after 429",
    () => connection(id),
    (c) => c.status === "connected",
  );
  expect(await h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: "rate_limited" } })).toBe(1);
  expect((await listed(id)).body.deployments).toEqual([expect.objectContaining({ name: "u/d", hardware: "cpu" })]);
});

test("a deployments next link to another origin is not followed", async () => {
  const token = "r8_deploymentsForeign00000000000";
  h.fake.addAccount(token, { type: "user", username: "u" });
  const { id } = await h.ctx.db.connection.create({ data: { workspaceId: "ws-dep", status: "connected" } });
  h.fake.inject(token, "deployments", { kind: "foreign-next" });
  const before = h.fake.requests.length;
  await expect(refreshDeployments(h.ctx, id, token, { force: true })).rejects.toBeInstanceOf(ForeignLinkError);
  expect(h.fake.requests.slice(before).every((r) => r.endpoint === "deployments")).toBe(true);
  expect((await connection(id)).deploymentsCheckedAt).toBeNull();
});
