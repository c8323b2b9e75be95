import { withApi, type Api } from "../support/api.js";
import { waitFor } from "../support/harness.js";
import { actualUsage, expectedUsage, generatePredictions } from "../../dev/predictions.js";
import { dumpRedis } from "../support/redis.js";

const started = withApi();
const call: Api["call"] = (...args) => started.api.call(...args);

test("full lifecycle through the HTTP API; aggregates equal the fake server's ground truth", async () => {
  const token = "r8_httpLifecycleToken000000000";
  started.h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 260, days: 20, seed: 11 }));
  const created = await call("POST", "/v1/connections", { workspaceId: "ws-http", token });
  expect(created.status).toBe(202);
  const id = created.body.id as string;

  const health = await waitFor(
    "synced",
    () => call("GET", `/v1/connections/${id}`),
    (r) => r.body.lastSyncedAt !== null,
  );
  expect(health.body).toMatchObject({ status: "connected", accountUsername: "acme", accountType: "organization", currentRun: null });
  expect(health.body.nextSyncAt).toEqual(expect.any(String));
  expect(await actualUsage(started.h.ctx.db, id)).toEqual(expectedUsage(started.h.fake.predictions(token)));

  const list = await call("GET", "/v1/connections?workspaceId=ws-http");
  expect(list.body.connections).toHaveLength(1);

  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  const usage = await call("GET", `/v1/usage?connectionId=${id}&from=${monthAgo}&to=${today}&groupBy=model`);
  const total = (usage.body.rows as { predictions: number }[]).reduce((n, r) => n + r.predictions, 0);
  expect(total).toBe(260);
  const byStatus = await call("GET", `/v1/usage?workspaceId=ws-http&from=${monthAgo}&to=${today}&groupBy=status`);
  expect((byStatus.body.rows as { status: string }[]).map((r) => r.status).sort()).toEqual(
    expect.arrayContaining(["aborted", "canceled", "failed", "succeeded"]),
  );
  const csv = await call("GET", `/v1/usage?connectionId=${id}&from=${monthAgo}&to=${today}&groupBy=date&format=csv`);
  expect(String(csv.body).split("\n")[0]).toBe(
    "line,date,predictions,succeeded,failed,canceled,aborted,inProgress,other,computeSeconds,meteredPredictions,billableSeconds,inputTokens,outputTokens," +
      "estimatedCostUsd,costBasis,hardwareCostUsd,tokenCostUsd,outputCostUsd,pricedPredictions,pricedShare,final,refreshedAt,instanceSeconds",
  );
  // Booleans are spelled as in JSON: an empty cell would read as "no value".
  const json = await call("GET", `/v1/usage?connectionId=${id}&from=${monthAgo}&to=${today}&groupBy=date`);
  const [header, ...lines] = String(csv.body).trim().split("\n");
  const finalAt = header!.split(",").indexOf("final");
  expect(lines.map((l) => l.split(",")[finalAt])).toEqual(json.body.rows.map((r: { final: boolean }) => String(r.final)));
  const bySource = await call("GET", `/v1/usage?connectionId=${id}&from=${monthAgo}&to=${today}&groupBy=source`);
  const truth = started.h.fake.predictions(token);
  expect(bySource.body.rows).toEqual(
    ["api", "web"].map((source) => expect.objectContaining({ source, predictions: truth.filter((p) => p.source === source).length })),
  );

  const page1 = await call("GET", `/v1/connections/${id}/events?limit=2`);
  expect(page1.body.events.map((e: { kind: string }) => e.kind)).toEqual(["sync_completed", "sync_started"]);
  const page2 = await call("GET", `/v1/connections/${id}/events?limit=2&cursor=${page1.body.nextCursor}`);
  expect(page2.body.events.map((e: { kind: string }) => e.kind)).toEqual(["verified", "connected"]);
  const onlyVerified = await call("GET", `/v1/connections/${id}/events?kind=verified`);
  expect(onlyVerified.body.events).toHaveLength(1);

  expect((await call("POST", `/v1/connections/${id}/sync`)).status).toBe(202);
  expect((await call("DELETE", `/v1/connections/${id}`)).status).toBe(204);
  expect((await call("GET", `/v1/connections/${id}`)).body.status).toBe("disconnected");
  expect((await call("POST", `/v1/connections/${id}/sync`)).status).toBe(409);
});

test("disconnect during a running backfill leaves no token, no scheduler and no rows after it", async () => {
  const token = "r8_disconnectMidway00000000000";
  started.h.fake.addAccount(token, { type: "user", username: "mid" }, generatePredictions({ count: 3000, days: 80, seed: 12 }));
  started.h.fake.pageLatencyMs = 30;
  try {
    const { body } = await call("POST", "/v1/connections", { workspaceId: "ws-mid", token });
    await waitFor(
      "backfill under way",
      () => started.h.ctx.db.predictionRecord.count({ where: { connectionId: body.id } }),
      (n) => n >= 300,
    );
    expect((await call("DELETE", `/v1/connections/${body.id}`)).status).toBe(204);
    const row = await started.h.ctx.db.connection.findUniqueOrThrow({ where: { id: body.id } });
    expect(row).toMatchObject({ status: "disconnected", tokenCiphertext: null });
    const frozen = await started.h.ctx.db.predictionRecord.count({ where: { connectionId: body.id } });
    // Let any in-flight slice job run to its end, then check nothing more was written.
    await waitFor(
      "no sync jobs left",
      () => started.h.ctx.queues.queue("sync").getJobCounts("active", "waiting", "delayed"),
      (c) => (c.active ?? 0) + (c.waiting ?? 0) + (c.delayed ?? 0) === 0,
    );
    expect(await started.h.ctx.db.predictionRecord.count({ where: { connectionId: body.id } })).toBe(frozen);
    expect(await started.h.ctx.queues.queue("sync").getJobSchedulersCount()).toBe(0);
  } finally {
    started.h.fake.pageLatencyMs = 0;
  }
});

test("bad input gets 400 with a reason, unknown ids 404, missing auth 401; probes need no auth", async () => {
  expect((await call("GET", "/v1/connections?workspaceId=x", undefined, {})).status).toBe(401);
  expect((await call("GET", "/v1/connections?workspaceId=x", undefined, { authorization: "Bearer nope" })).status).toBe(401);
  const bad = await call("POST", "/v1/connections", { workspaceId: "", token: "x" });
  expect(bad.status).toBe(400);
  expect(bad.body.issues.join(" ")).toMatch(/workspaceId/);
  expect((await call("GET", "/v1/connections/not-a-uuid")).status).toBe(400);
  expect((await call("GET", "/v1/connections/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  expect((await call("GET", "/v1/usage?workspaceId=w&from=2026-02-01&to=2026-01-01")).body.issues.join(" ")).toMatch(
    /from must not be after to/,
  );
  expect((await call("GET", "/v1/usage?from=2026-01-01&to=2026-01-02")).status).toBe(400);
  expect((await call("GET", "/v1/connections/00000000-0000-4000-8000-000000000000/events?cursor=zzz")).status).toBe(400);
  expect((await call("GET", "/healthz", undefined, {})).status).toBe(200);
  expect((await call("GET", "/readyz", undefined, {})).body).toEqual({ status: "ready", postgres: "ok", redis: "ok" });
  expect((await call("GET", "/openapi.json")).body.paths).toHaveProperty(["/v1/connections/{id}/events"]);
});

test("no token ever appears in an API response or in Redis", async () => {
  const all = started.api.responses.join("\n");
  for (const t of ["httpLifecycleToken", "disconnectMidway"]) {
    expect(all).not.toContain(t);
    expect(await dumpRedis(started.h.ctx.redis, started.h.config.queuePrefix)).not.toContain(t);
  }
});
