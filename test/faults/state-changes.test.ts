import { randomBytes } from "node:crypto";
import { parseConfig } from "../../src/config.js";
import * as producer from "../../src/producer.js";
import { startService } from "../../src/service.js";
import { TokenVault } from "../../src/vault.js";
import { recordScenario } from "../support/fault-summary.js";
import { connectSynced } from "../support/api.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";

// Races and stalls of a connection's state: every change has one owner (the state machine, applied
// under the row lock), and nothing transient strands a connection.

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ JOB_BACKOFF_MS: "20", REPLICATE_TIMEOUT_MS: "1000" });
});
afterAll(() => h.close());

const row = (id: string) => h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
const kinds = async (id: string) =>
  (await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id }, orderBy: { id: "asc" } })).map((e) => e.kind);
/** No job of any connection is running or due, apart from the schedulers' next ticks. */
const settled = () =>
  waitFor(
    "queues idle",
    async () => {
      const jobs = await Promise.all(
        [h.ctx.queues.queue("verify"), h.ctx.queues.queue("sync")].map((q) => q.getJobs(["active", "waiting", "delayed"])),
      );
      return jobs.flat().filter((j) => j && !j.id?.startsWith("repeat:")).length;
    },
    (n) => n === 0,
    60_000,
  );

test("a DELETE racing a token replacement is final: no token stored, nothing syncs again", async () => {
  const ids = await Promise.all(
    Array.from({ length: 60 }, async (_, i) => (await connectSynced(h, { name: `race${i}`, type: "user" })).id),
  );
  const replaced: string[] = [];
  await Promise.all(
    ids.map(async (id, i) => {
      const token = `r8_new${i}${randomBytes(8).toString("hex")}`;
      replaced.push(token);
      h.fake.addAccount(token, { type: "user", username: `race${i}` });
      // Either may win the row, in any interleaving (staggered by 0–4 ms either way); a replace after
      // the delete is refused (409), never applied.
      const stagger = (i % 9) - 4;
      const later = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
      await Promise.allSettled([
        later(stagger).then(() => producer.replaceToken(h.ctx, id, token)),
        later(-stagger).then(() => producer.disconnect(h.ctx, id)),
      ]);
    }),
  );
  await settled();
  const rows = await Promise.all(ids.map(row));
  expect(rows.filter((r) => r.status !== "disconnected" || r.tokenCiphertext !== null)).toEqual([]);
  expect(await h.ctx.queues.queue("sync").getJobSchedulersCount()).toBe(0);
  for (const id of ids) {
    const k = await kinds(id);
    expect(k.slice(k.indexOf("disconnected") + 1).filter((e) => e === "verified" || e === "sync_started")).toEqual([]);
    await expect(producer.syncNow(h.ctx, id)).rejects.toThrow(/disconnected/);
  }
  recordScenario({
    scenario: "DELETE races a token replace (issue 11 #1)",
    injected: "PUT token and DELETE at once for 60 connected connections",
    outcome: "all 60 disconnected, no ciphertext, no scheduler, no verify or sync after the delete",
  });
}, 240_000);

test("a first verification that meets a 503 storm keeps retrying with backoff until it connects", async () => {
  const token = `r8_storm${randomBytes(8).toString("hex")}`;
  h.fake.addAccount(token, { type: "organization", username: "storm" });
  // More failures than JOB_ATTEMPTS (3) × the client's own retries (2): a bounded job used to give up here.
  h.fake.inject(token, "account", ...Array.from({ length: 14 }, () => ({ kind: "status" as const, status: 503 })));
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-storm", token });
  const done = await waitFor(
    "verified after the storm",
    () => row(id),
    (c) => c.status === "connected",
    60_000,
  );
  expect(done.accountUsername).toBe("storm");
  const retries = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: "provider_error" } });
  expect(retries.length).toBeGreaterThanOrEqual(5);
  expect(retries.every((e) => e.level === "warn" && /verification retries in \d+s/.test(e.message))).toBe(true);
  recordScenario({
    scenario: "503 storm at first verification (issue 11 #4)",
    injected: "GET /v1/account answers 503 14 times in a row",
    outcome: `${retries.length} provider_error (warn) events with the next retry; connected afterwards, never stranded`,
  });
}, 90_000);

test("a token sealed under a key that is no longer configured pauses the connection with its own event; restoring the key resumes it", async () => {
  const { id, token } = await connectSynced(h, { name: "lostkey", type: "user" });
  const lostKey = randomBytes(32);
  const stranger = new TokenVault(new Map([["gone", lostKey]]), "gone");
  const sealed = stranger.seal(token, id);
  await h.ctx.db.connection.update({ where: { id }, data: { tokenCiphertext: sealed.ciphertext, tokenKeyId: sealed.keyId } });
  await producer.syncNow(h.ctx, id);
  const paused = await waitFor(
    "paused",
    () => row(id),
    (c) => c.status === "credential_error",
  );
  expect(paused.tokenCiphertext).toBe(sealed.ciphertext);
  await settled();
  const unreadable = await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id, kind: "token_unreadable" } });
  expect(unreadable).toHaveLength(1);
  expect(await h.ctx.queues.queue("sync").getJobScheduler(`sync-${id}`)).toBeFalsy();

  // The operator restores the key and restarts: the connection resumes without the customer.
  await h.service.stopWorkers();
  const { lastSyncedAt } = await row(id);
  const restarted = await startService(
    parseConfig({ ...h.env, TOKEN_ENCRYPTION_KEYS: `${h.env.TOKEN_ENCRYPTION_KEYS},gone:${lostKey.toString("base64")}` }),
    { workers: true, client: { retryBaseMs: 5, retries: 1 } },
  );
  try {
    const resumed = await waitFor(
      "resumed and synced",
      () => row(id),
      (c) => c.status === "connected" && c.lastSyncedAt !== null && c.lastSyncedAt > lastSyncedAt!,
    );
    expect(resumed.tokenCiphertext).toBe(sealed.ciphertext);
    const kinds = (await h.ctx.db.integrationEvent.findMany({ where: { connectionId: id }, orderBy: { id: "asc" } })).map((e) => e.kind);
    expect(kinds.slice(kinds.indexOf("token_unreadable"))).toEqual(["token_unreadable", "token_readable", "verified", "sync_completed"]);
    expect(await restarted.ctx.queues.queue("sync").getJobScheduler(`sync-${id}`)).toBeTruthy();
  } finally {
    await restarted.close();
    await h.service.startWorkers();
  }
  recordScenario({
    scenario: "token key missing from the keyring (issue 10)",
    injected: "stored ciphertext sealed under an unknown key id; then the key restored and the service restarted",
    outcome:
      "one token_unreadable event; paused (credential_error) with no scheduler, instead of endless retries; resumed by itself once the key is back",
  });
}, 60_000);
