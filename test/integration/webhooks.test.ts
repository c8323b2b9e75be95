import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import * as producer from "../../src/producer.js";
import { sweepWebhooks, type WebhookPayload } from "../../src/webhooks/relay.js";
import { generatePredictions } from "../../dev/predictions.js";
import { API_TOKEN, createHarness, waitFor, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Webhooks end to end: a receiver on loopback verifies every delivery with the standardwebhooks
// package, the way a backend would.

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  payload: WebhookPayload;
  status: number;
}

/** Answers 204 to verified deliveries, except the statuses queued in `answers`; a bad signature is a test failure. */
class Receiver {
  readonly received: Received[] = [];
  readonly answers: number[] = [];
  readonly rejected: string[] = [];
  private server: Server | null = null;

  async start(): Promise<string> {
    const verifier = new Webhook(SECRET);
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        try {
          const payload = verifier.verify(body, req.headers as Record<string, string>) as WebhookPayload;
          const status = this.answers.shift() ?? 204;
          this.received.push({ path: req.url ?? "", headers: req.headers, body, payload, status });
          res.writeHead(status).end();
        } catch (err) {
          this.rejected.push(String(err));
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/hooks`;
  }

  delivered(connectionId: string, type: string): Received[] {
    return this.received.filter((r) => r.payload.data.connectionId === connectionId && r.payload.type === type && r.status < 300);
  }

  waitFor(connectionId: string, type: string): Promise<Received[]> {
    return waitFor(
      `${type} delivered for ${connectionId}`,
      async () => this.delivered(connectionId, type),
      (r) => r.length > 0,
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("with WEBHOOK_URL and WEBHOOK_SECRET set", () => {
  let h: Harness;
  const receiver = new Receiver();
  const tokens: string[] = [];
  /** A token of the organization `username` (by default `name`) with `count` predictions. */
  const account = (name: string, count: number, username = name) => {
    const token = `r8_${name}Hooks0000000000000000`;
    tokens.push(token);
    h.fake.addAccount(token, { type: "organization", username }, generatePredictions({ count, days: 5, seed: count, idPrefix: name }));
    return token;
  };

  beforeAll(async () => {
    const url = await receiver.start();
    h = await createHarness({ WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET });
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  test("verified and backfill.completed arrive; a redelivery after a 500 carries the same webhook-id", async () => {
    receiver.answers.push(500);
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-hooks", token: account("verifyco", 150) });
    const [verified] = await receiver.waitFor(id, "connection.verified");
    const [backfilled] = await receiver.waitFor(id, "backfill.completed");

    // The first delivery (whatever it was) was answered 500 and sent again under the same id.
    const first = receiver.received[0]!;
    expect(first.status).toBe(500);
    const again = receiver.received.filter((r) => r.headers["webhook-id"] === first.headers["webhook-id"]);
    expect(again.map((r) => r.status)).toEqual([500, 204]);
    expect(again[1]!.body).toBe(first.body);

    expect(verified!.payload).toMatchObject({ type: "connection.verified", data: { connectionId: id, workspaceId: "ws-hooks" } });
    expect(Date.parse(verified!.payload.timestamp)).not.toBeNaN();
    expect(backfilled!.payload.data.health.state).toBe("healthy");
    expect(verified!.headers["webhook-id"]).not.toBe(backfilled!.headers["webhook-id"]);

    // Support sees the failed attempt and the delivery in the event log (recorded once the answer is read).
    const events = await waitFor(
      "webhook attempts in the event log",
      () =>
        h.ctx.db.integrationEvent.findMany({
          where: {
            kind: { in: ["webhook_failed", "webhook_delivered"] },
            detail: { path: ["webhookId"], equals: first.headers["webhook-id"] },
          },
          orderBy: { id: "asc" },
        }),
      (e) => e.length === 2,
    );
    expect(events.map((e) => [e.kind, e.level, e.httpStatus])).toEqual([
      ["webhook_failed", "warn", 500],
      ["webhook_delivered", "info", 204],
    ]);
    expect(events[0]!.detail).toMatchObject({ attempt: 1 });
  });

  test("a revoke then replace yields connection.action_required, then connection.recovered", async () => {
    const token = account("revokeco", 40);
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-hooks", token });
    await waitForSyncedSince(h, id, null);
    h.fake.removeToken(token);
    await producer.syncNow(h.ctx, id);
    const [required] = await receiver.waitFor(id, "connection.action_required");
    expect(required!.payload.data.health).toMatchObject({ state: "action_required", action: expect.any(String) });

    const replacement = account("revokecoNew", 0, "revokeco"); // a new token of the same organization
    h.fake.upsertPredictions(replacement, generatePredictions({ count: 40, days: 5, seed: 40, idPrefix: "revokeco" }));
    await producer.replaceToken(h.ctx, id, replacement);
    const [recovered] = await receiver.waitFor(id, "connection.recovered");
    expect(receiver.received.indexOf(recovered!)).toBeGreaterThan(receiver.received.indexOf(required!));
    expect(Date.parse(recovered!.payload.timestamp)).toBeGreaterThan(Date.parse(required!.payload.timestamp));
  });

  test("sync.failed and connection.disconnected arrive", async () => {
    const token = account("failco", 30);
    h.fake.inject(token, "predictions", ...Array.from({ length: 12 }, () => ({ kind: "status", status: 503 }) as const));
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-hooks", token });
    const [failed] = await receiver.waitFor(id, "sync.failed");
    expect(failed!.payload.data.health.state).toBe("failing");
    await producer.disconnect(h.ctx, id);
    const [gone] = await receiver.waitFor(id, "connection.disconnected");
    expect(gone!.payload.data.health.state).toBe("disconnected");
  });

  test("no token or secret in any delivered body, header or URL", () => {
    expect(receiver.rejected).toEqual([]);
    expect(receiver.received.length).toBeGreaterThan(5);
    const secrets = [...tokens, API_TOKEN, SECRET, SECRET.slice("whsec_".length)];
    for (const r of receiver.received) {
      expect(r.path).toBe("/hooks");
      expect(r.headers.authorization).toBeUndefined();
      const text = `${r.body}\n${JSON.stringify(r.headers)}`;
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/r8_/);
    }
  });

  test("an outbox row survives a failed enqueue (Redis away, or no worker alive) and is handed over later", async () => {
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-outbox", token: account("outboxco", 0) });
    await receiver.waitFor(id, "connection.verified");
    // The state change lands while no worker process runs, and the only relay cannot reach Redis.
    await h.service.stopWorkers();
    await producer.disconnect(h.ctx, id);
    await expect(sweepWebhooks(h.ctx.db, () => Promise.reject(new Error("ECONNREFUSED")))).rejects.toThrow("ECONNREFUSED");
    const row = await h.ctx.db.webhookDelivery.findFirstOrThrow({ where: { connectionId: id, type: "connection.disconnected" } });
    expect(row.status).toBe("pending");

    await h.service.startWorkers();
    const delivered = await receiver.waitFor(id, "connection.disconnected");
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.headers["webhook-id"]).toBe(`evt_${row.eventId}_connection.disconnected`);
  });
});

describe("with webhooks unset", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  test("no relay and no webhook worker run; the outbox rows stay pending and nothing is queued", async () => {
    expect(h.config.webhooks).toBeNull();
    // Put there by hand, it stays: no worker takes webhook jobs.
    await h.ctx.queues.enqueue("deliver", { deliveryId: "0" });
    const token = "r8_quietHooks000000000000000";
    h.fake.addAccount(token, { type: "user", username: "quiet" }, generatePredictions({ count: 20, days: 2, seed: 2 }));
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-quiet", token });
    await waitForSyncedSince(h, id, null);
    const rows = await h.ctx.db.webhookDelivery.findMany({ where: { connectionId: id } });
    expect(rows.map((r) => r.type).sort()).toEqual(["backfill.completed", "connection.verified"]);
    expect(rows.every((r) => r.status === "pending" && r.payload === null)).toBe(true);
    expect(await h.ctx.queues.queue("webhook").getJobCounts()).toMatchObject({
      waiting: 1,
      delayed: 0,
      active: 0,
      completed: 0,
      failed: 0,
    });
  });
});
