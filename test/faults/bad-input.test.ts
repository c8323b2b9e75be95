import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import * as producer from "../../src/producer.js";
import { recordScenario } from "../support/fault-summary.js";
import { request } from "../support/api.js";
import { createHarness, type Harness } from "../support/harness.js";

// Malformed input is a 400 naming the field, never a 500 from the database underneath (issue 11 #11).

let h: Harness;
let app: FastifyInstance;
let origin: string;
let id: string;
beforeAll(async () => {
  h = await createHarness({}, { workers: false });
  app = await buildServer(h.ctx);
  origin = await app.listen({ host: "127.0.0.1", port: 0 });
  ({ id } = await producer.connect(h.ctx, { workspaceId: "ws-bad", token: "r8_badInputToken000000000" }));
});
const refused: string[] = [];
afterAll(async () => {
  recordScenario({
    scenario: "malformed input (issue 11 #11)",
    injected:
      "NUL in workspaceId (POST, list, usage), the list's q and a price's source, year 0000 in from/asOf/since, forged cursors (month 13, id > 2^63, year 0000)",
    outcome: `${refused.length} requests: 400 validation_failed naming ${[...new Set(refused)].join(", ")}; no 500`,
  });
  await app.close();
  await h.close();
});

const cursor = (text: string) => Buffer.from(text).toString("base64url");
const UUID = "00000000-0000-4000-8000-000000000000";

test.each([
  ["workspaceId", "POST", "/v1/connections", { workspaceId: "ws\u0000x", token: "r8_validLookingToken0000" }],
  ["workspaceId", "GET", "/v1/connections?workspaceId=ws%00x", undefined],
  ["workspaceId", "GET", "/v1/usage?workspaceId=ws%00x&from=2026-01-01&to=2026-01-02", undefined],
  ["q", "GET", "/v1/connections?q=%00", undefined],
  ["source", "POST", "/v1/prices/hardware", { sku: "gpu-x", usdPerSecond: "0.001", effectiveFrom: "2026-01-01", source: "t\u0000" }],
  ["from", "GET", "/v1/usage?workspaceId=ws&from=0000-01-01&to=2026-01-02", undefined],
  ["asOf", "GET", "/v1/prices?asOf=0000-01-01", undefined],
  ["since", "GET", `/v1/connections/:id/events?since=0000-01-01T00:00:00Z`, undefined],
  ["cursor", "GET", `/v1/connections/:id/events?cursor=${cursor("2026-13-01T00:00:00.000Z|5")}`, undefined],
  ["cursor", "GET", `/v1/connections/:id/events?cursor=${cursor("2026-01-01T00:00:00.000Z|99999999999999999999")}`, undefined],
  ["cursor", "GET", `/v1/connections/:id/events?cursor=${cursor("0000-01-01T00:00:00.000Z|5")}`, undefined],
  ["cursor", "GET", `/v1/connections?cursor=${cursor(`2026-13-01T00:00:00.000Z|${UUID}`)}`, undefined],
  ["cursor", "GET", `/v1/connections?cursor=${cursor(`0000-01-01T00:00:00.000Z|${UUID}`)}`, undefined],
] as const)("a malformed %s is a 400 naming it: %s %s", async (field, method, path, body) => {
  const res = await request(origin, method, path.replace(":id", id), body);
  const answer = res.body as { error: string; message: string; issues?: string[] };
  expect({ status: res.status, error: answer.error }).toEqual({ status: 400, error: "validation_failed" });
  expect(`${answer.message} ${(answer.issues ?? []).join(" ")}`).toContain(field);
  refused.push(field);
});

test("a workspace id of 200 characters, as connect accepts, is managed over HTTP too", async () => {
  const workspaceId = "w".repeat(200);
  await producer.connect(h.ctx, { workspaceId, token: "r8_longWorkspaceToken000000" });
  const res = await request(origin, "PUT", `/v1/workspaces/${workspaceId}/settings`, { timeZone: "Asia/Kolkata" });
  expect([res.status, (res.body as { timeZone: string }).timeZone]).toEqual([200, "Asia/Kolkata"]);
});

test("a malformed URL answers the one error shape, with a request id", async () => {
  for (const [path, status] of [
    ["/v1/connections/x%ZZ", 400],
    [`/v1/workspaces/${"w".repeat(5000)}/settings`, 414],
  ] as const) {
    const res = await request(origin, "GET", path);
    const body = res.body as { error: string; requestId?: string };
    expect({ status: res.status, error: body.error, requestId: typeof body.requestId }).toEqual({
      status,
      error: "bad_request",
      requestId: "string",
    });
  }
});
