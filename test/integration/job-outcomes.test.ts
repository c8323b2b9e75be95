import type { Job, Queue } from "bullmq";
import * as producer from "../../src/producer.js";
import { schedulerId } from "../../src/queue/queues.js";
import { generatePredictions } from "../../dev/predictions.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { waitForSyncedSince } from "../support/sync-checks.js";

// Operations reads bull-board: a failed job there must mean the service is broken, not that a
// customer revoked a token; and a job must say whose it is.

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const status = (id: string) => producer.getConnection(h.ctx, id).then((c) => c.status);
const finished = async (queue: Queue) => (await queue.getJobs(["completed", "failed"])) as Job[];
const idle = (queue: Queue) =>
  waitFor(
    `${queue.name} idle`,
    () => queue.getJobCounts("active", "waiting", "delayed", "prioritized"),
    (c) => Object.values(c).every((n) => n === 0),
  );

test("a token revoked mid-life and a mistyped token pause their connections with completed jobs: no failed job", async () => {
  const token = "r8_jobsRevokedLater000000000";
  h.fake.addAccount(token, { type: "organization", username: "acme" }, generatePredictions({ count: 30, days: 3, seed: 5 }));
  const revoked = await producer.connect(h.ctx, { workspaceId: "ws-revoked", token });
  await waitForSyncedSince(h, revoked.id, null, 20_000);
  h.fake.removeToken(token);
  await producer.syncNow(h.ctx, revoked.id);
  await waitFor(
    "paused after revoke",
    () => status(revoked.id),
    (s) => s === "credential_error",
  );

  const mistyped = await producer.connect(h.ctx, { workspaceId: "ws-mistyped", token: "r8_jobsNeverValid0000000000" });
  await waitFor(
    "paused at verification",
    () => status(mistyped.id),
    (s) => s === "credential_error",
  );
  await Promise.all([idle(h.ctx.queues.queue("sync")), idle(h.ctx.queues.queue("verify"))]);

  // What bull-board counts as failed.
  expect(await h.ctx.queues.queue("sync").getFailedCount()).toBe(0);
  expect(await h.ctx.queues.queue("verify").getFailedCount()).toBe(0);
  const paused = [...(await finished(h.ctx.queues.queue("sync"))), ...(await finished(h.ctx.queues.queue("verify")))].filter(
    (j) => (j.returnvalue as { outcome?: string } | null)?.outcome === "paused",
  );
  // The tick that started the run read it, met the 401 and paused the connection.
  expect(paused.map((j) => j.name).sort()).toEqual(["tick ws-revoked", "verify ws-mistyped"]);
  expect((await producer.getConnection(h.ctx, revoked.id)).health).toMatchObject({ state: "action_required" });
});

test("job names carry the workspace id (verify, tick, slice and the scheduler); job data carries ids only", async () => {
  const token = "r8_jobsNamed0000000000000000";
  // Enough pages that the first window splits: the windows split off are read by slice jobs.
  h.fake.addAccount(token, { type: "user", username: "named" }, generatePredictions({ count: 3_000, days: 4, seed: 6 }));
  const { id } = await producer.connect(h.ctx, { workspaceId: "ws-named", token });
  await waitForSyncedSince(h, id, null, 20_000);
  const jobs = [...(await finished(h.ctx.queues.queue("verify"))), ...(await finished(h.ctx.queues.queue("sync")))].filter(
    (j) => j.data.connectionId === id,
  );
  expect(new Set(jobs.map((j) => j.name))).toEqual(new Set(["verify ws-named", "tick ws-named", "slice ws-named"]));
  for (const job of jobs) expect(Object.keys(job.data).filter((k) => !["connectionId", "runId", "window", "page"].includes(k))).toEqual([]);
  expect(JSON.stringify(jobs.map((j) => j.data))).not.toContain("jobsNamed");
  expect((await h.ctx.queues.queue("sync").getJobScheduler(schedulerId(id)))?.name).toBe("tick ws-named");
});
