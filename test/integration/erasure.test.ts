import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { ConflictError } from "../../src/errors.js";
import * as producer from "../../src/producer.js";
import { tokenFingerprint } from "../../src/vault.js";
import type { WebhookPayload } from "../../src/webhooks/relay.js";
import type { FakePrediction } from "../../dev/fake-replicate.js";
import { generatePredictions } from "../../dev/predictions.js";
import { SUPPORT_TOKEN, waitFor } from "../support/harness.js";
import { connectSynced, withApi } from "../support/api.js";
import { fakeDeployment } from "../support/deployments.js";
import { NOTHING, erasureAudit, historyCounts, redisTraces, waitForErased } from "../support/erasure-checks.js";
import { expectExact, waitForDeploymentsRead } from "../support/sync-checks.js";

// Erasure on request, through the producer and the HTTP API, with in-process workers. Batches of 7
// rows, so even these small histories take many statements. The kill -9 case is in
// test/faults/erasure-crash.test.ts.

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const received: WebhookPayload[] = [];
let receiver: Server;
const env: Record<string, string> = { ERASURE_BATCH_ROWS: "7", WEBHOOK_SECRET: SECRET };
beforeAll(async () => {
  // Registered before withApi's hook, which reads env: the receiver's URL is known by then.
  const verifier = new Webhook(SECRET);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      received.push(verifier.verify(body, req.headers as Record<string, string>) as WebhookPayload);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  env.WEBHOOK_URL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});
afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
const started = withApi(env);

const today = new Date().toISOString().slice(0, 10);
const monthAgo = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
const workspaceUsage = (workspaceId: string) =>
  producer.queryUsage(started.h.ctx, {
    workspaceId,
    from: monthAgo,
    to: today,
    groupBy: ["date", "connection", "model", "deployment", "source"],
  });

/** A synced connection of its own account; its first page answers 429 once, so its token has a learned pace (kept a day). */
async function syncedConnection(
  workspaceId: string,
  name: string,
  count: number,
): Promise<{ id: string; token: string; truth: FakePrediction[] }> {
  const truth = generatePredictions({ count, days: 10, seed: count, idPrefix: name });
  const { id, token } = await connectSynced(started.h, {
    name,
    workspaceId,
    token: `r8_erase${name}00000000000000000000`,
    predictions: truth,
    deployments: [fakeDeployment("acme/sdxl-prod", { number: 3, createdAt: "2020-01-01T00:00:00Z", hardware: "gpu-t4", min: 1, max: 2 })],
    faults: [{ kind: "status", status: 429, headers: { "retry-after": "1" } }],
  });
  await waitForDeploymentsRead(started.h, id);
  return { id, token, truth };
}

const learnedPace = (token: string) =>
  started.h.ctx.redis.exists(`${started.h.config.queuePrefix}:ratecap:${tokenFingerprint(token)}:learned`);

test("refused while connected; after a disconnect, erased exactly once with exact counts, a webhook, and nothing left; the other connection untouched", async () => {
  const { h, api } = started;
  const a = await syncedConnection("ws-erase", "erasedco", 300);
  const b = await syncedConnection("ws-erase", "keptco", 200);
  expect(await learnedPace(a.token)).toBe(1);

  const refused = await api.call("POST", `/v1/connections/${a.id}/erasure`);
  expect([refused.status, refused.body.error]).toEqual([409, "conflict"]);
  await expect(producer.eraseConnection(h.ctx, a.id)).rejects.toBeInstanceOf(ConflictError);
  const readOnly = await api.call("POST", `/v1/connections/${a.id}/erasure`, {}, { authorization: `Bearer ${SUPPORT_TOKEN}` });
  expect(readOnly.status).toBe(403);
  expect((await api.call("DELETE", `/v1/connections/${a.id}`)).status).toBe(204);

  const before = await historyCounts(h, a.id);
  expect(before.ledgerRows).toBe(300);
  expect(before.usageRows).toBeGreaterThan(10);
  expect(before.deploymentReleases).toBe(1);
  const onlyB = (
    await producer.queryUsage(h.ctx, {
      connectionId: b.id,
      from: monthAgo,
      to: today,
      groupBy: ["date", "connection", "model", "deployment", "source"],
    })
  ).rows;

  // What the queues and the pacing keep of it before: finished jobs, their events, the token's learned pace.
  const traces = await redisTraces(h, a.id, a.token);
  expect(traces.some((t) => t.includes(":ratecap:"))).toBe(true);
  const keys = traces.map((t) => t.split(" ")[0]!.slice(h.config.queuePrefix.length));
  expect(keys).toEqual(expect.arrayContaining([":sync:events", ":verify:events", ":sync:completed", ":verify:completed"]));
  expect(keys.filter((k) => /^:(sync|verify):(\d+|slice-|verify-|repeat:)/.test(k)).length).toBeGreaterThanOrEqual(3);

  const first = await api.call("POST", `/v1/connections/${a.id}/erasure`, {});
  expect(first.status).toBe(202);
  expect(first.body).toMatchObject({ connectionId: a.id, workspaceId: "ws-erase", state: "in_progress", erasedAt: null });
  // From the request on, usage and coverage leave it out, however far the erasure is.
  const during = await workspaceUsage("ws-erase");
  expect(during.coverage.map((c) => c.connectionId)).toEqual([b.id]);
  expect(during.rows).toEqual(onlyB);
  const again = await api.call("POST", `/v1/connections/${a.id}/erasure`);
  expect([again.status, again.body.requestedAt]).toEqual([202, first.body.requestedAt]);

  const tombstone = await waitForErased(h, a.id);
  const done = await api.call("GET", `/v1/connections/${a.id}/erasure`, undefined, { authorization: `Bearer ${SUPPORT_TOKEN}` });
  expect(done.body).toMatchObject({ state: "erased", requestedAt: first.body.requestedAt, deleted: before });
  const audit = await erasureAudit(h, a.id);
  expect(audit.events).toHaveLength(1);
  expect(audit.events[0]!.detail).toEqual({ ...before, requestedAt: first.body.requestedAt });
  expect(audit.webhooks.map((w) => w.eventId)).toEqual([audit.events[0]!.id]);
  const [hook] = await waitFor(
    "connection.erased delivered",
    async () => received.filter((r) => r.type === "connection.erased" && r.data.connectionId === a.id),
    (r) => r.length > 0,
  );
  expect(hook!.data).toMatchObject({ workspaceId: "ws-erase", eventId: audit.events[0]!.id.toString(), health: { state: "disconnected" } });

  // Asked again once erased: the same erasure, no second event.
  expect((await producer.eraseConnection(h.ctx, a.id)).state).toBe("erased");
  expect((await erasureAudit(h, a.id)).events).toHaveLength(1);

  // The tombstone: disconnected, no run state, its event log whole.
  expect(await historyCounts(h, a.id)).toEqual(NOTHING);
  expect(tombstone).toMatchObject({
    status: "disconnected",
    syncState: null,
    highWaterMark: null,
    lastSyncedAt: null,
    lastSyncStartedAt: null,
  });
  const kinds = (await api.call("GET", `/v1/connections/${a.id}/events?limit=200`)).body.events.map((e: { kind: string }) => e.kind);
  expect(kinds).toEqual(
    expect.arrayContaining(["connected", "verified", "sync_started", "sync_completed", "disconnected", "history_erased"]),
  );
  expect((await api.call("GET", `/v1/connections/${a.id}`)).body.status).toBe("disconnected");

  const after = await workspaceUsage("ws-erase");
  expect(after.rows).toEqual(onlyB);
  expect(after.coverage.map((c) => c.connectionId)).toEqual([b.id]);
  const usageOfA = await producer.queryUsage(h.ctx, { connectionId: a.id, from: monthAgo, to: today, groupBy: ["date", "deployment"] });
  expect([usageOfA.rows, usageOfA.idleFloor, usageOfA.coverage, usageOfA.deployments]).toEqual([[], [], [], []]);
  await expectExact(h, b.id, b.truth);
  expect(await redisTraces(h, a.id, a.token)).toEqual([]);
  // Only the pacing of tokens no connection holds goes: b's stays.
  expect(await learnedPace(b.token)).toBe(1);
});

test("disconnect: true disconnects a connected connection in the same call, then erases it", async () => {
  const { h } = started;
  const c = await syncedConnection("ws-erase-now", "nowco", 150);
  const before = await historyCounts(h, c.id);

  const requested = await producer.eraseConnection(h.ctx, c.id, { disconnect: true });
  expect(requested.state).toBe("in_progress");
  await waitForErased(h, c.id);

  expect((await erasureAudit(h, c.id)).events.map((e) => e.detail)).toEqual([
    { ...before, requestedAt: requested.requestedAt!.toISOString() },
  ]);
  const [disconnected] = (await producer.listEvents(h.ctx, c.id, { kind: "disconnected" })).events;
  expect(new Date(disconnected!.occurredAt).getTime()).toBeLessThanOrEqual(requested.requestedAt!.getTime());
  expect(await historyCounts(h, c.id)).toEqual(NOTHING);
  expect(await redisTraces(h, c.id, c.token)).toEqual([]);
});

test("a workspace erasure erases every disconnected connection and leaves the others; with disconnect: true, all", async () => {
  const { h, api } = started;
  const [w1, w2, w3] = [
    await syncedConnection("ws-erase-all", "wone", 60),
    await syncedConnection("ws-erase-all", "wtwo", 70),
    await syncedConnection("ws-erase-all", "wthree", 80),
  ];
  for (const w of [w1, w2]) await producer.disconnect(h.ctx, w.id);
  const before = { [w1.id]: await historyCounts(h, w1.id), [w2.id]: await historyCounts(h, w2.id) };

  const requested = await producer.eraseWorkspace(h.ctx, "ws-erase-all");
  expect(requested.erasures.map((e) => [e.connectionId, e.state])).toEqual([
    [w1.id, "in_progress"],
    [w2.id, "in_progress"],
  ]);
  expect(requested.skipped).toEqual([{ connectionId: w3.id, status: "connected" }]);
  for (const w of [w1, w2]) {
    await waitForErased(h, w.id);
    expect((await erasureAudit(h, w.id)).events.map((e) => e.detail)).toMatchObject([before[w.id]!]);
    expect(await historyCounts(h, w.id)).toEqual(NOTHING);
  }
  await expectExact(h, w3.id, w3.truth);
  expect((await workspaceUsage("ws-erase-all")).coverage.map((c) => c.connectionId)).toEqual([w3.id]);

  const all = await api.call("POST", "/v1/workspaces/ws-erase-all/erasure", { disconnect: true });
  expect(all.status).toBe(202);
  expect(all.body.erasures.map((e: { state: string }) => e.state)).toEqual(["erased", "erased", "in_progress"]);
  expect(all.body.skipped).toEqual([]);
  await waitForErased(h, w3.id);
  expect(await historyCounts(h, w3.id)).toEqual(NOTHING);
  expect((await workspaceUsage("ws-erase-all")).rows).toEqual([]);
  for (const w of [w1, w2, w3]) {
    expect((await erasureAudit(h, w.id)).events).toHaveLength(1);
    expect(await redisTraces(h, w.id, w.token)).toEqual([]);
  }
  const unknown = await api.call("POST", "/v1/workspaces/ws-nobody/erasure");
  expect([unknown.status, unknown.body.error]).toEqual([404, "not_found"]);
});
