import * as producer from "../../src/producer.js";
import { generatePredictions } from "../../dev/predictions.js";
import { recordScenario } from "../support/fault-summary.js";
import { createHarness, waitFor, type Harness } from "../support/harness.js";
import { fakeDeployment } from "../support/deployments.js";
import { NOTHING, erasureAudit, historyCounts, redisTraces, waitForErased } from "../support/erasure-checks.js";
import { expectExact, waitForSyncedSince } from "../support/sync-checks.js";
import { WorkerProcess } from "../support/worker-process.js";

// The erase job in a worker process killed with SIGKILL after its first batch committed: a new
// worker takes the job over and finishes it, with the counts of everything deleted before and after
// the kill and one audit event.

const TIMEOUT = 240_000;
const SEEDED_LEDGER = 200_000;

let h: Harness;
const processes: WorkerProcess[] = [];
beforeAll(async () => {
  // A short lock, so the killed worker's job is taken over in about a second; small batches, so the
  // 200k rows take hundreds of statements and the kill lands mid-way.
  h = await createHarness({ JOB_LOCK_MS: "1000", ERASURE_BATCH_ROWS: "500" }, { workers: false });
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill9()));
  await h.close();
});

const startWorker = () => {
  const p = new WorkerProcess(h.env);
  processes.push(p);
  return p.ready();
};

/** A history far larger than a sync of the fake would make quickly: ledger, usage rows and releases written in SQL. */
async function seedHistory(connectionId: string): Promise<void> {
  await h.ctx.db.$executeRawUnsafe(
    `INSERT INTO prediction_records (connection_id, prediction_id, model, deployment, status, created_at, predict_time)
     SELECT $1::uuid, 'seeded-' || g, 'seed/model', '', 'succeeded',
            timestamptz '2020-01-01' + (g % 1000) * interval '1 day', 1.5
     FROM generate_series(1, ${SEEDED_LEDGER}) g`,
    connectionId,
  );
  await h.ctx.db.$executeRawUnsafe(
    `INSERT INTO usage_buckets (connection_id, workspace_id, bucket_start, model, deployment, source, predictions, succeeded, failed,
       canceled, aborted, in_progress, other, compute_seconds, total_seconds, metered_predictions)
     SELECT $1::uuid, 'ws-crash-erase', timestamptz '2020-01-01' + (g % 1000) * interval '1 day', 'seed/model-' || (g / 1000), '', '', 200, 200, 0, 0, 0, 0, 0, 300, 300, 200
     FROM generate_series(0, 2999) g`,
    connectionId,
  );
  await h.ctx.db.$executeRawUnsafe(
    `INSERT INTO deployments (connection_id, name, release_number, model, version, hardware, min_instances, max_instances, effective_from, last_seen_on)
     SELECT $1::uuid, 'seed/deployment', g, 'seed/model', 'v' || g, 'gpu-t4', 0, 1, date '2020-01-01', date '2020-01-01'
     FROM generate_series(1, 1200) g`,
    connectionId,
  );
}

const progress = async (id: string) => {
  const row = await h.ctx.db.connection.findUniqueOrThrow({ where: { id } });
  return { counts: row.erasureCounts as { ledgerRows: number } | null, erasedAt: row.erasedAt };
};

test(
  "kill -9 of the worker after the first batch of a 200k-row erasure: a restarted worker finishes it, counts exact, one event",
  async () => {
    const token = "r8_eraseCrash00000000000000000000001";
    h.fake.addAccount(token, { type: "organization", username: "erasecrash" }, generatePredictions({ count: 500, days: 5, seed: 61 }));
    h.fake.setDeployments(token, [
      fakeDeployment("acme/sdxl-prod", { number: 1, createdAt: "2020-01-01T00:00:00Z", hardware: "gpu-t4", min: 1, max: 1 }),
    ]);
    const otherToken = "r8_eraseCrashOther000000000000000001";
    const otherTruth = generatePredictions({ count: 800, days: 5, seed: 62, idPrefix: "kept" });
    h.fake.addAccount(otherToken, { type: "organization", username: "erasecrashkept" }, otherTruth);

    let worker = await startWorker();
    const { id } = await producer.connect(h.ctx, { workspaceId: "ws-crash-erase", token });
    const other = (await producer.connect(h.ctx, { workspaceId: "ws-crash-erase", token: otherToken })).id;
    await waitForSyncedSince(h, id, null);
    await waitForSyncedSince(h, other, null);
    await producer.disconnect(h.ctx, id);
    await seedHistory(id);
    const before = await historyCounts(h, id);
    expect(before.ledgerRows).toBe(SEEDED_LEDGER + 500);

    const requested = await producer.eraseConnection(h.ctx, id);
    await waitFor(
      "the first batch committed",
      () => progress(id),
      (p) => (p.counts?.ledgerRows ?? 0) > 0,
      60_000,
      2,
    );
    await worker.kill9();
    const atKill = await progress(id);
    const leftAtKill = await historyCounts(h, id);
    expect(atKill.erasedAt).toBeNull();
    expect(atKill.counts!.ledgerRows).toBeLessThan(before.ledgerRows);
    // What the counts say was deleted is exactly what is gone: each batch and its count commit together.
    expect(leftAtKill.ledgerRows).toBe(before.ledgerRows - atKill.counts!.ledgerRows);

    worker = await startWorker();
    const tombstone = await waitForErased(h, id, 120_000);
    expect(tombstone).toMatchObject({ status: "disconnected", syncState: null, highWaterMark: null, lastSyncedAt: null });

    const audit = await erasureAudit(h, id);
    expect(audit.events.map((e) => e.detail)).toEqual([{ ...before, requestedAt: requested.requestedAt!.toISOString() }]);
    expect(audit.webhooks).toHaveLength(1);
    expect(await historyCounts(h, id)).toEqual(NOTHING);
    await expectExact(h, other, otherTruth);
    expect(await redisTraces(h, id, token)).toEqual([]);
    await worker.stop();
    recordScenario({
      scenario: "kill -9 worker during an erasure",
      injected: `SIGKILL after ${atKill.counts!.ledgerRows} of ${before.ledgerRows} ledger rows erased (batches of 500)`,
      outcome: "a restarted worker finished it; counts exact, 1 history_erased, nothing left in Postgres or Redis",
    });
  },
  TIMEOUT,
);
