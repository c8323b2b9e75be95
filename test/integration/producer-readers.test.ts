import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import { ConfigError } from "../../src/config.js";
import { ValidationError } from "../../src/errors.js";
import { createProducer, loadProducerConfig, type Producer } from "../../src/producer.js";
import { generatePredictions } from "../../dev/predictions.js";
import { request } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { REDIS_URL } from "../support/redis.js";

// A backend runs the producer in-process with the database and Redis settings (and the keys to store
// tokens), no API or support token; the HTTP routes answer with the same readers.

let h: Harness;
let backend: Producer;
let app: FastifyInstance;
let origin: string;

beforeAll(async () => {
  h = await createHarness();
  const env = { DATABASE_URL: h.t.url, REDIS_URL, QUEUE_PREFIX: h.config.queuePrefix, TOKEN_ENCRYPTION_KEYS: h.env.TOKEN_ENCRYPTION_KEYS };
  backend = createProducer(loadProducerConfig(env));
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await backend.close();
  await app.close();
  await h.close();
});

const http = async (url: string) => (await request(origin, "GET", url)).body;
const asJson = (value: unknown) => JSON.parse(JSON.stringify(value));

test("connect, then read the connection, the list, the events and the usage in-process; HTTP answers the same", async () => {
  const token = "r8_producerReaders0000000000";
  const predictions = generatePredictions({ count: 120, days: 6, seed: 21 });
  h.fake.addAccount(token, { type: "organization", username: "acme" }, predictions);
  const { id } = await backend.connect({ workspaceId: "ws-readers", token });

  const connection = await waitFor(
    "healthy",
    () => backend.getConnection(id),
    (c) => c.health.state === "healthy",
  );
  expect(connection).toMatchObject({
    workspaceId: "ws-readers",
    status: "connected",
    accountUsername: "acme",
    nextSyncAt: expect.any(Date),
  });
  expect(await http(`/v1/connections/${id}`)).toEqual(asJson(connection));

  const page = await backend.listConnections({ workspaceId: "ws-readers", limit: 10 });
  expect(page).toEqual({ connections: [expect.objectContaining({ id, health: connection.health })], nextCursor: null });
  expect(await http("/v1/connections?workspaceId=ws-readers&limit=10")).toEqual(asJson(page));

  const verified = await backend.listEvents(id, { kind: "verified" });
  expect(verified.events.map((e) => e.kind)).toEqual(["verified"]);
  expect(await http(`/v1/connections/${id}/events?kind=verified`)).toEqual(asJson(verified));

  const [from, to] = [Date.now() - 10 * 86_400_000, Date.now()].map((t) => new Date(t).toISOString().slice(0, 10));
  const usage = await backend.queryUsage({ workspaceId: "ws-readers", from: from!, to: to!, groupBy: ["date"], fillZeros: true });
  expect(usage.rows.reduce((n, r) => n + r.predictions, 0)).toBe(120);
  expect(usage.coverage).toEqual([expect.objectContaining({ connectionId: id, complete: true })]);
  expect(await http(`/v1/usage?workspaceId=ws-readers&from=${from}&to=${to}&groupBy=date&fillZeros=true`)).toEqual(asJson(usage));
});

test("the readers validate like the routes: bad input is a ValidationError naming the field, an unknown id not found", async () => {
  await expect(backend.listConnections({ limit: 500 })).rejects.toThrow(ValidationError);
  await expect(backend.listConnections({ status: "connected" } as never)).rejects.toThrow(/Unrecognized key/);
  await expect(backend.queryUsage({ from: "2026-01-02", to: "2026-01-01", workspaceId: "w" })).rejects.toThrow(/from must not be after to/);
  await expect(backend.getConnection("00000000-0000-4000-8000-000000000000")).rejects.toThrow(/not found/);
  await expect(backend.listEvents("not-a-uuid")).rejects.toThrow(/connection id must be a UUID/);
});

test("without encryption keys the producer reads but refuses to store a token", async () => {
  const reader = createProducer(loadProducerConfig({ DATABASE_URL: h.t.url, REDIS_URL, QUEUE_PREFIX: h.config.queuePrefix }));
  try {
    expect((await reader.listConnections({ workspaceId: "ws-readers" })).connections).toHaveLength(1);
    await expect(reader.connect({ workspaceId: "ws-x", token: "r8_readerOnly000000000000" })).rejects.toThrow(ConfigError);
  } finally {
    await reader.close();
  }
  expect(() => loadProducerConfig({ DATABASE_URL: "mysql://nope" })).toThrow(/DATABASE_URL/);
});
