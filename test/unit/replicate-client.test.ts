import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { brotliCompressSync, gzipSync } from "node:zlib";
import {
  CredentialError,
  ForeignLinkError,
  MalformedResponseError,
  RateLimitError,
  ScopeError,
  TransientProviderError,
} from "../../src/errors.js";
import { ReplicateClient } from "../../src/replicate/client.js";
import type { RequestRateCap } from "../../src/replicate/rate-cap.js";
import { FakeReplicate, type Fault } from "../../dev/fake-replicate.js";
import { generatePredictions, generateTrainings } from "../../dev/predictions.js";

const TOKEN = "r8_clientTestToken000000000000000000000";
const fake = new FakeReplicate();
let client: ReplicateClient;

beforeAll(async () => {
  const baseUrl = await fake.start();
  client = new ReplicateClient({ baseUrl, timeoutMs: 2000, retries: 2, retryBaseMs: 5 });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.addAccount(TOKEN, { type: "organization", username: "acme" }, generatePredictions({ count: 250, marker: "SECRET-INPUT" }));
  fake.requests.length = 0;
});

/** A rate cap that grants every slot at once and records each token it was asked for. */
const countingCap = (acquired: string[]): RequestRateCap => ({
  acquire: async (token) => acquired.push(token),
  throttled: async () => 1,
  learnedRate: async () => ({ requestsPerSecond: 1, configuredPerSecond: 1 }) as never,
});

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

test("reads the account with a bearer token", async () => {
  await expect(client.getAccount(TOKEN)).resolves.toEqual({ type: "organization", username: "acme", name: null, github_url: null });
  expect(fake.requests[0]!.authorization).toBe(`Bearer ${TOKEN}`);
});

test("follows next links to the end, newest first, dropping inputs and outputs at parse time", async () => {
  const seen: string[] = [];
  let page = await client.listPredictions(TOKEN, {});
  for (;;) {
    seen.push(...page.results.map((p) => p.id));
    expect(JSON.stringify(page)).not.toContain("SECRET-INPUT");
    if (!page.next) break;
    page = await client.listPredictions(TOKEN, { cursorUrl: page.next });
  }
  expect(seen).toHaveLength(250);
  expect(new Set(seen).size).toBe(250);
  expect(fake.requests).toHaveLength(3);
});

test("passes created_after and created_before", async () => {
  const after = new Date(Date.now() - 5 * 86_400_000);
  const before = new Date(Date.now() - 2 * 86_400_000);
  const page = await client.listPredictions(TOKEN, { createdAfter: after, createdBefore: before });
  expect(page.results.length).toBeGreaterThan(0);
  for (const p of page.results) {
    expect(p.created_at.getTime()).toBeGreaterThanOrEqual(after.getTime());
    expect(p.created_at.getTime()).toBeLessThan(before.getTime());
  }
  expect(fake.requests[0]!.url).toContain(`created_after=${encodeURIComponent(after.toISOString())}`);
});

test("401 is a credential error, 403 a scope error, and neither is retried", async () => {
  expect(await failure(client.getAccount("r8_wrong0000000000000"))).toBeInstanceOf(CredentialError);
  fake.inject(TOKEN, "predictions", { kind: "status", status: 403, body: JSON.stringify({ detail: "You do not have permission" }) });
  const err = await failure(client.listPredictions(TOKEN));
  expect(err).toBeInstanceOf(ScopeError);
  expect(err.message).toContain("You do not have permission");
  expect(fake.requests).toHaveLength(2);
});

test("429 carries the retry-after from the header (seconds or HTTP date) or the body, and is not retried", async () => {
  const body = JSON.stringify({ detail: "Request was throttled. Expected available in 7 seconds." });
  fake.inject(TOKEN, "predictions", { kind: "status", status: 429, body, headers: { "retry-after": "3" } });
  let err = (await failure(client.listPredictions(TOKEN))) as RateLimitError;
  expect(err).toBeInstanceOf(RateLimitError);
  expect([err.retryAfterSeconds, err.retryAfterSource]).toEqual([3, "header"]);

  fake.inject(TOKEN, "predictions", {
    kind: "status",
    status: 429,
    body,
    headers: { "retry-after": new Date(Date.now() + 20_000).toUTCString() },
  });
  err = (await failure(client.listPredictions(TOKEN))) as RateLimitError;
  expect(err.retryAfterSource).toBe("header");
  expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(18);
  expect(err.retryAfterSeconds).toBeLessThanOrEqual(21);

  fake.inject(TOKEN, "predictions", { kind: "status", status: 429, body });
  err = (await failure(client.listPredictions(TOKEN))) as RateLimitError;
  expect([err.retryAfterSeconds, err.retryAfterSource]).toEqual([7, "body"]);

  // Replicate's own throttle bodies: the documented text, and the retry_after field it has sent.
  for (const [replicateBody, seconds] of [
    ['{"detail":"Request was throttled. Your rate limit resets in ~30s."}', 30],
    ['{"detail":"Request was throttled. Expected available in 5 seconds.","status":429,"retry_after":5}', 5],
  ] as const) {
    fake.inject(TOKEN, "predictions", { kind: "status", status: 429, body: replicateBody });
    err = (await failure(client.listPredictions(TOKEN))) as RateLimitError;
    expect([err.retryAfterSeconds, err.retryAfterSource]).toEqual([seconds, "body"]);
  }

  fake.inject(TOKEN, "predictions", { kind: "status", status: 429, body: "{}" });
  err = (await failure(client.listPredictions(TOKEN))) as RateLimitError;
  expect(err.retryAfterSource).toBe("default");
  expect(fake.requests).toHaveLength(6);
});

test("5xx is retried inside the client, then succeeds", async () => {
  fake.inject(TOKEN, "predictions", { kind: "status", status: 502 }, { kind: "status", status: 503 });
  const page = await client.listPredictions(TOKEN);
  expect(page.results).toHaveLength(100);
  expect(fake.requests.map((r) => r.status)).toEqual([502, 503, 200]);
});

test("5xx that outlasts the retries is a transient provider error", async () => {
  fake.inject(TOKEN, "predictions", ...Array.from({ length: 3 }, () => ({ kind: "status" as const, status: 500 })));
  const err = await failure(client.listPredictions(TOKEN));
  expect(err).toBeInstanceOf(TransientProviderError);
  expect((err as TransientProviderError).httpStatus).toBe(500);
});

test("a timeout is a transient provider error", async () => {
  const quick = new ReplicateClient({ baseUrl: fake.baseUrl, timeoutMs: 100, retries: 0 });
  fake.inject(TOKEN, "predictions", { kind: "delay", ms: 1000 });
  expect(await failure(quick.listPredictions(TOKEN))).toBeInstanceOf(TransientProviderError);
});

test("truncated JSON and a page of the wrong shape are malformed responses that quote no body", async () => {
  fake.inject(TOKEN, "predictions", { kind: "truncated-json" }, { kind: "schema-violation" });
  const truncated = await failure(client.listPredictions(TOKEN));
  expect(truncated).toBeInstanceOf(MalformedResponseError);
  expect(truncated.message).toMatch(/not valid JSON/);
  expect(truncated.message).not.toContain("SECRET-INPUT");
  const invalid = await failure(client.listPredictions(TOKEN));
  expect(invalid).toBeInstanceOf(MalformedResponseError);
  expect(invalid.message).toMatch(/next: invalid_type; results: invalid_type/);
  expect(invalid.message).not.toContain("SECRET-INPUT");
});

test("unknown statuses and extra fields are accepted", async () => {
  fake.addAccount(TOKEN, { type: "user", username: "u" }, [
    { id: "x1", status: "quantum_superposition", created_at: new Date().toISOString(), brand_new_field: { a: 1 } } as never,
  ]);
  const page = await client.listPredictions(TOKEN);
  expect(page.results[0]).toMatchObject({ id: "x1", status: "quantum_superposition", model: null, metrics: { predictTime: null } });
});

test("a next link to a foreign host is never requested; http on the same host is upgraded", async () => {
  fake.inject(TOKEN, "predictions", { kind: "foreign-next" });
  const page = await client.listPredictions(TOKEN);
  expect(page.next).toContain("attacker.invalid");
  expect(await failure(client.listPredictions(TOKEN, { cursorUrl: page.next }))).toBeInstanceOf(ForeignLinkError);
  expect(fake.requests).toHaveLength(1);

  const https = new ReplicateClient({ baseUrl: "https://api.replicate.com/v1", timeoutMs: 100 });
  expect(https.predictionsUrl({ cursorUrl: "http://api.replicate.com/v1/predictions?cursor=abc" }).href).toBe(
    "https://api.replicate.com/v1/predictions?cursor=abc",
  );
  expect(() => https.predictionsUrl({ cursorUrl: "https://api.replicate.com.evil.example/v1/predictions" })).toThrow(ForeignLinkError);
  for (const userinfo of ["evil:pw@", "evil@", ":pw@"]) {
    expect(() => https.predictionsUrl({ cursorUrl: `https://${userinfo}api.replicate.com/v1/predictions?cursor=abc` })).toThrow(
      /user name or password/,
    );
  }
});

test("redirects are not followed (the token would travel with them)", async () => {
  const server = http.createServer((_req, res) => {
    res.writeHead(302, { location: "http://127.0.0.2:1/steal" });
    res.end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const c = new ReplicateClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, timeoutMs: 500, retries: 0 });
    expect(await failure(c.getAccount(TOKEN))).toBeInstanceOf(MalformedResponseError);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("bodies are decoded per content-encoding and bounded on the wire and decoded", async () => {
  const page = JSON.stringify({
    next: null,
    previous: null,
    results: [{ id: "z1", status: "succeeded", created_at: "2026-06-01T00:00:00Z" }],
  });
  const bodies: Record<string, [string, Buffer]> = {
    "/v1/gzip/predictions": ["gzip", gzipSync(page)],
    "/v1/br/predictions": ["br", brotliCompressSync(page)],
    "/v1/plainbig/predictions": ["identity", Buffer.alloc(5000, " ")],
    "/v1/bomb/predictions": ["gzip", gzipSync(Buffer.alloc(50_000, " "))],
    "/v1/bad/predictions": ["gzip", Buffer.from("not gzip at all")],
  };
  const server = http.createServer((req, res) => {
    const [encoding, body] = bodies[req.url!.split("?")[0]!]!;
    res.writeHead(200, { "content-type": "application/json", "content-encoding": encoding });
    res.end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const at = (path: string) =>
    new ReplicateClient({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/${path}`,
      timeoutMs: 1000,
      retries: 0,
      maxResponseBytes: 4096,
    });
  try {
    expect((await at("gzip").listPredictions(TOKEN)).results.map((p) => p.id)).toEqual(["z1"]);
    expect((await at("br").listPredictions(TOKEN)).results.map((p) => p.id)).toEqual(["z1"]);
    for (const path of ["plainbig", "bomb"]) {
      const err = await failure(at(path).listPredictions(TOKEN));
      expect(err).toBeInstanceOf(MalformedResponseError);
      expect(err.message).toMatch(/larger than 4096 bytes decoded/);
    }
    expect((await failure(at("bad").listPredictions(TOKEN))).message).toMatch(/not valid gzip/);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("the client's own retries ask stillWanted first, for requests made for a connection", async () => {
  const asked: string[] = [];
  let wanted = true;
  const c = new ReplicateClient({
    baseUrl: fake.baseUrl,
    timeoutMs: 2000,
    retries: 3,
    retryBaseMs: 5,
    stillWanted: async (token, connectionId) => (asked.push(`${token === TOKEN}:${connectionId}`), wanted),
  });
  const fail503 = () => fake.inject(TOKEN, "predictions", ...Array.from({ length: 2 }, () => ({ kind: "status" as const, status: 503 })));
  fail503();
  expect((await c.listPredictions(TOKEN, { connectionId: "c1" })).results).toHaveLength(100);
  expect(asked).toEqual(["true:c1", "true:c1"]);

  wanted = false;
  fake.requests.length = 0;
  fail503();
  const err = await failure(c.listPredictions(TOKEN, { connectionId: "c1" }));
  expect(err).toBeInstanceOf(TransientProviderError);
  expect(err.message).toMatch(/not retried: the connection no longer holds this token/);
  expect(fake.requests).toHaveLength(1);
  // Without a connection (the client used on its own) nothing is asked: the 503 left over is retried.
  asked.length = 0;
  expect((await c.listPredictions(TOKEN)).results).toHaveLength(100);
  expect(asked).toEqual([]);
});

test("the token is removed by value from everything a response holds, whatever its shape", async () => {
  const token = "sk-live.Echo1234567890";
  fake.addAccount(token, { type: "user", username: "echo" }, [
    { id: "e1", status: "succeeded", created_at: new Date().toISOString(), model: `acme/${token}` },
  ]);
  fake.inject(token, "predictions", { kind: "status", status: 400, body: JSON.stringify({ detail: `bad token ${token}` }) });
  const err = await failure(client.listPredictions(token));
  expect(err.message).toBe("unexpected HTTP 400 from /v1/predictions (bad token [REDACTED])");
  expect(err.stack).not.toContain(token);
  expect((await client.listPredictions(token)).results[0]!.model).toBe("acme/[REDACTED]");
});

test("lists trainings newest first through next links, without a time filter, metadata only and tagged as trainings", async () => {
  fake.upsertTrainings(TOKEN, generateTrainings({ count: 150, days: 60, marker: "SECRET-INPUT" }));
  const seen: string[] = [];
  let page = await client.listTrainings(TOKEN);
  for (;;) {
    for (const t of page.results) {
      expect(Object.keys(t).sort()).toEqual([
        "completed_at",
        "created_at",
        "data_removed",
        "deployment",
        "id",
        "kind",
        "metrics",
        "model",
        "source",
        "started_at",
        "status",
        "version",
      ]);
      expect(t).toMatchObject({ kind: "training", deployment: null });
    }
    expect(JSON.stringify(page)).not.toMatch(/SECRET-INPUT|replicate\.delivery|input_images|weights/);
    seen.push(...page.results.map((t) => t.created_at.toISOString()));
    if (!page.next) break;
    page = await client.listTrainings(TOKEN, { cursorUrl: page.next });
  }
  expect(seen).toHaveLength(150);
  expect([...seen].sort().reverse()).toEqual(seen);
  expect(fake.requests.map((r) => r.url.split("?")[0])).toEqual(["/v1/trainings", "/v1/trainings"]);
  expect(fake.requests[0]!.url).toBe("/v1/trainings");
});

test.each<[string, Fault, new (...args: never[]) => Error]>([
  ["401", { kind: "status", status: 401, body: JSON.stringify({ detail: "Invalid token" }) }, CredentialError],
  ["403", { kind: "status", status: 403, body: JSON.stringify({ detail: "You do not have permission" }) }, ScopeError],
  ["429", { kind: "status", status: 429, headers: { "retry-after": "4" } }, RateLimitError],
  ["5xx", { kind: "status", status: 503 }, TransientProviderError],
  ["malformed page", { kind: "truncated-json" }, MalformedResponseError],
])("a %s on /v1/trainings is the same typed error as on predictions", async (_name, fault, type) => {
  // Enough for every try: a 5xx is retried inside the client.
  fake.inject(TOKEN, "trainings", fault, fault, fault);
  const err = await failure(client.listTrainings(TOKEN));
  expect(err).toBeInstanceOf(type);
  if (err instanceof RateLimitError) expect([err.retryAfterSeconds, err.retryAfterSource]).toEqual([4, "header"]);
  if (err instanceof ScopeError) expect(err.message).toContain("/v1/trainings");
  expect(fake.requests.every((r) => r.endpoint === "trainings")).toBe(true);
});

test("trainings pages take the token's pace, and their next links are followed on the API origin only", async () => {
  const acquired: string[] = [];
  const cap = countingCap(acquired);
  const paced = new ReplicateClient({ baseUrl: fake.baseUrl, timeoutMs: 2000, retries: 0, rateCap: cap });
  fake.upsertTrainings(TOKEN, generateTrainings({ count: 120 }));
  const first = await paced.listTrainings(TOKEN);
  await paced.listTrainings(TOKEN, { cursorUrl: first.next });
  expect(acquired).toEqual([TOKEN, TOKEN]);

  fake.inject(TOKEN, "trainings", { kind: "foreign-next" });
  const foreign = await paced.listTrainings(TOKEN);
  expect(await failure(paced.listTrainings(TOKEN, { cursorUrl: foreign.next }))).toBeInstanceOf(ForeignLinkError);
  const userinfo = `${fake.baseUrl.replace("://", "://evil:pw@")}/trainings?cursor=x`;
  expect((await failure(paced.listTrainings(TOKEN, { cursorUrl: userinfo }))).message).toMatch(/user name or password/);
  expect(acquired).toHaveLength(3);
});

test("onSent is told as a page's request goes out (its slot taken), before any answer", async () => {
  const acquired: string[] = [];
  const cap = countingCap(acquired);
  // A server that answers only when the test says: onSent cannot be waiting for the answer.
  const server = http.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const arrived = once(server, "request") as Promise<[http.IncomingMessage, http.ServerResponse]>;
  const held = new ReplicateClient({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    timeoutMs: 5000,
    rateCap: cap,
  });
  try {
    let sent!: () => void;
    const gone = new Promise<void>((resolve) => (sent = resolve));
    const page = held.listPredictions(TOKEN, { onSent: sent });
    await gone;
    expect(acquired).toEqual([TOKEN]);
    const [, res] = await arrived;
    res.setHeader("content-type", "application/json").end(JSON.stringify({ next: null, results: [] }));
    await expect(page).resolves.toMatchObject({ next: null, results: [] });
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
