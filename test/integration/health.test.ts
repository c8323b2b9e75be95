import { randomBytes } from "node:crypto";
import { ERROR_KINDS, errorOf } from "../../src/domain/event-kinds.js";
import * as producer from "../../src/producer.js";
import { recordEvent } from "../../src/repositories/events.js";
import { TokenVault } from "../../src/vault.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Health as support reads it, through the real views (the event log and the connection row).

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

async function connected(name: string): Promise<{ id: string; token: string }> {
  const token = `r8_${name}${randomBytes(8).toString("hex")}`;
  h.fake.addAccount(token, { type: "organization", username: name });
  const { id } = await producer.connect(h.ctx, { workspaceId: `ws-${name}`, token });
  await waitForSyncedSince(h, id, null, 20_000);
  return { id, token };
}

test("a token sealed under a key no longer configured: health names the keyring and the operator, not the customer", async () => {
  const { id } = await connected("lostkey");
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

test("every error kind of the table is read by the views as the current error", async () => {
  const { id } = await connected("errors");
  for (const kind of ERROR_KINDS) {
    await recordEvent(h.ctx.db, { connectionId: id, kind, level: "error", message: "injected", httpStatus: 503 });
    expect((await producer.getConnection(h.ctx, id)).health.lastError).toMatchObject({
      kind,
      httpStatus: 503,
      message: errorOf(kind).text,
    });
  }
});
