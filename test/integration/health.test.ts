import { randomBytes } from "node:crypto";
import { ERROR_KINDS, errorOf } from "../../src/domain/event-kinds.js";
import { utc } from "../../src/domain/health.js";
import * as producer from "../../src/producer.js";
import { recordEvent } from "../../src/repositories/events.js";
import { TokenVault } from "../../src/vault.js";
import { connectSynced } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";

// Health as support reads it, through the real views (the event log and the connection row).

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

test("a token sealed under a key no longer configured: health names the keyring and the operator, not the customer", async () => {
  const { id } = await connectSynced(h, { name: "lostkey" });
  const sealed = new TokenVault(new Map([["gone", randomBytes(32)]]), "gone").seal("r8_unreadable0000000000", id);
  await h.ctx.db.connection.update({ where: { id }, data: { tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId } });
  await producer.syncNow(h.ctx, id);
  const { health } = await waitFor(
    "paused",
    () => producer.getConnection(h.ctx, id),
    (c) => c.status === "credential_error",
  );
  expect(health).toMatchObject({ state: "action_required", lastError: { kind: "token_unreadable" } });
  expect(health.message).toMatch(/cannot be decrypted with the configured keys/);
  expect(health).toMatchObject({ actionBy: "operator", action: expect.stringMatching(/TOKEN_ENCRYPTION_KEYS/) });
});

test("verification that keeps failing: from the first failure on, the error, the attempt and the next try", async () => {
  const token = `r8_down${randomBytes(8).toString("hex")}`;
  h.fake.addAccount(token, { type: "organization", username: "down" });
  h.fake.inject(token, "account", ...Array.from({ length: 60 }, () => ({ kind: "status" as const, status: 500 })));
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-down", token });
  const { health } = await waitFor(
    "three failed attempts",
    () => producer.getConnection(h.ctx, id),
    (c) => (c.health.attempts ?? 0) >= 3,
  );
  expect(health).toMatchObject({ state: "failing", lastError: { kind: "provider_error", httpStatus: 500 }, actionBy: null });
  expect(Date.parse(health.until!)).toBeGreaterThan(Date.parse(health.lastError!.at));
  expect(health.message).toBe(
    `Checking the token failed on attempt ${health.attempts} (see the current error); the next attempt is due by ${utc(new Date(health.until!))}.`,
  );

  h.fake.clearFaults(token);
  const recovered = await waitFor(
    "verified once Replicate answers",
    () => producer.getConnection(h.ctx, id),
    (c) => c.status === "connected",
    30_000,
  );
  expect(recovered.health).toMatchObject({ lastError: null });
  expect(recovered.health.attempts).toBeUndefined();
}, 60_000);

test("every error kind of the table is read by the views as the current error", async () => {
  const { id } = await connectSynced(h, { name: "errors" });
  for (const kind of ERROR_KINDS) {
    await recordEvent(h.ctx.db, { connectionId: id, kind, level: "error", message: "injected", httpStatus: 503 });
    expect((await producer.getConnection(h.ctx, id)).health.lastError).toMatchObject({
      kind,
      httpStatus: 503,
      message: errorOf(kind).text,
    });
  }
});

test("a failed optional read is a warning until it answers again; the connection stays healthy", async () => {
  const { id } = await connectSynced(h, { name: "nodeploy" });
  const read = (endpoint: string, ok: boolean) =>
    recordEvent(h.ctx.db, {
      connectionId: id,
      kind: ok ? "enrichment_recovered" : "enrichment_failed",
      level: ok ? "info" : "warn",
      message: "injected",
      httpStatus: ok ? null : 404,
      detail: { endpoint, httpStatus: ok ? null : 404 },
    });
  await read("/v1/deployments", false);
  const { health } = await producer.getConnection(h.ctx, id);
  expect(health).toMatchObject({ state: "healthy", lastError: null });
  expect(health.warnings).toEqual([
    {
      kind: "enrichment_failed",
      since: expect.any(String),
      message: expect.stringMatching(/^Deployments could not be read from Replicate \(HTTP 404\); usage still syncs; .* unpriced/),
      action: null,
    },
  ]);
  expect((await producer.listConnections(h.ctx, { workspaceId: "ws-nodeploy" })).connections[0]!.health.warnings).toHaveLength(1);
  await read("/v1/deployments", true);
  expect((await producer.getConnection(h.ctx, id)).health.warnings).toEqual([]);
});
