import { ForeignLinkError } from "../../src/errors.js";
import * as producer from "../../src/producer.js";
import { refreshDeployments } from "../../src/pricing/deployments.js";
import { generatePredictions } from "../../dev/predictions.js";
import { fakeDeployment } from "../support/deployments.js";
import { withApi } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

const started = withApi();

const connection = (id: string) => started.h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const deploymentRequests = (token: string) =>
  started.h.fake.requests.filter((r) => r.endpoint === "deployments" && r.authorization === `Bearer ${token}`).length;
const listed = (id: string) => started.api.call("GET", `/v1/connections/${id}/deployments`);

test("deployments are read at verification (all pages), shown per connection, and re-read at most once per UTC day", async () => {
  const token = "r8_deploymentsToken000000000000";
  started.h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 50, days: 3, seed: 3 }));
  started.h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 3, createdAt: "2026-01-10T08:00:00Z", hardware: "gpu-l40s", min: 1, max: 4 }),
    fakeDeployment("acme/llm", { number: 1, createdAt: "2026-02-01T00:00:00Z", hardware: "gpu-h100-2x", min: 0, max: 2 }),
  ]);
  started.h.fake.deploymentPageSize = 1;
  const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-dep", token });
  await waitForSyncedSince(started.h, id, null, 20_000);
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
  started.h.fake.setDeployments(token, [
    fakeDeployment("acme/sdxl-prod", { number: 4, createdAt: "2026-03-01T08:00:00Z", hardware: "gpu-a100-large", min: 2, max: 4 }),
  ]);
  const tomorrow = new Date(Date.now() + 86_400_000);
  await refreshDeployments(started.h.ctx, id, token, { now: tomorrow });
  await refreshDeployments(started.h.ctx, id, token, { now: tomorrow });
  expect(deploymentRequests(token)).toBe(3);
  const releases = await started.h.ctx.db.deployment.findMany({
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

test("401 and 403 on GET /v1/deployments pause the connection; after a 429 the first sync page reads them", async () => {
  for (const [status, expected] of [
    [401, "credential_invalid"],
    [403, "scope_denied"],
  ] as const) {
    const token = `r8_deploymentsFault${status}0000000000`;
    started.h.fake.addAccount(token, { type: "user", username: "u" });
    started.h.fake.inject(token, "deployments", { kind: "status", status });
    const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-dep", token });
    await waitFor(
      `status after ${status}`,
      () => connection(id),
      (c) => c.status === "credential_error",
    );
    expect(await started.h.ctx.db.integrationEvent.count({ where: { connectionId: id, kind: expected } })).toBe(1);
  }

  const token = "r8_deploymentsThrottled000000000";
  started.h.fake.addAccount(token, { type: "user", username: "u" });
  started.h.fake.setDeployments(token, [
    fakeDeployment("u/d", { number: 1, createdAt: "2026-01-01T00:00:00Z", hardware: "cpu", min: 0, max: 1 }),
  ]);
  started.h.fake.inject(token, "deployments", { kind: "status", status: 429, headers: { "retry-after": "1" } });
  const { id } = await producer.connect(started.h.ctx, { workspaceId: "ws-dep", token });
  // Verification goes on without them; the first sync page reads them.
  const synced = await waitForSyncedSince(started.h, id, null, 20_000);
  expect(synced.status).toBe("connected");
  expect(deploymentRequests(token)).toBe(2);
  expect((await listed(id)).body.deployments).toEqual([expect.objectContaining({ name: "u/d", hardware: "cpu" })]);
});

test("a deployments next link to another origin is not followed", async () => {
  const token = "r8_deploymentsForeign00000000000";
  started.h.fake.addAccount(token, { type: "user", username: "u" });
  const { id } = await started.h.ctx.db.connection.create({ data: { workspaceId: "ws-dep", status: "connected" } });
  started.h.fake.inject(token, "deployments", { kind: "foreign-next" });
  const before = started.h.fake.requests.length;
  await expect(refreshDeployments(started.h.ctx, id, token, { force: true })).rejects.toBeInstanceOf(ForeignLinkError);
  expect(started.h.fake.requests.slice(before).every((r) => r.endpoint === "deployments")).toBe(true);
  expect((await connection(id)).deploymentsCheckedAt).toBeNull();
});
