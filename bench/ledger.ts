import { pruneStep } from "../src/lifecycle/prune.js";
import { completeRun } from "../src/repositories/runs.js";
import { createConnection } from "../src/repositories/connections.js";
import { openWindows } from "../src/domain/checkpoint.js";
import { beginRun, runSlice } from "../src/sync/run.js";
import { FakeReplicate } from "../dev/fake-replicate.js";
import { actualUsage, expectedUsage, generatePredictions } from "../dev/predictions.js";
import { startBenchService } from "./support.js";

export interface LedgerResult {
  days: number;
  perDay: number;
  backfillDays: number;
  total: number;
  finalRows: number;
  mostRows: number;
  bound: number;
  exact: boolean;
}

const DAY = 86_400_000;

/**
 * One connection synced once a simulated day for `days` days, the prune job run after each sync:
 * the ledger must stay near one backfill window of predictions while usage keeps every day.
 * Runs in-process with the simulated clock (an in-process fake: nothing here is timed).
 */
export async function ledger(days = 180, perDay = 500, backfillDays = 90): Promise<LedgerResult> {
  const fake = new FakeReplicate();
  const service = await startBenchService(await fake.start(), {}, false);
  const { db, vault } = service.ctx;
  const token = "r8_benchLedger";
  const start = Date.parse("2026-01-01T00:00:00.000Z");
  const settings = { backfillDays, lookbackHours: 24 };
  const all = [];
  fake.addAccount(token, { type: "user", username: "ledger" }, []);
  const { id } = await createConnection(db, vault, "bench", token);
  await db.connection.update({ where: { id }, data: { status: "connected" } });
  let mostRows = 0;
  try {
    for (let day = 0; day < days; day++) {
      const end = new Date(start + (day + 1) * DAY);
      // All finished: an unfinished one would keep every later run reading back to it.
      const today = generatePredictions({ count: perDay, days: 1, end, seed: day, idPrefix: `d${day}-` }).map((p) =>
        p.status === "processing" || p.status === "starting" ? { ...p, status: "succeeded" } : p,
      );
      fake.upsertPredictions(token, today);
      all.push(...today);
      const now = new Date(end.getTime() + 3_600_000);
      let { checkpoint } = (await beginRun(db, id, settings, now))!;
      while (!checkpoint.done) {
        for (const [w] of openWindows(checkpoint)) {
          const outcome = await runSlice(db, service.ctx.replicate, token, id, checkpoint, w, { sliceMs: 60_000, parallelism: 4 });
          if (outcome.applied) checkpoint = outcome.checkpoint;
        }
      }
      await completeRun(db, id, checkpoint, { kind: "sync_completed", level: "info", message: "done" });
      await pruneStep(db, backfillDays, now);
      mostRows = Math.max(mostRows, await db.predictionRecord.count({ where: { connectionId: id } }));
    }
    const exact = JSON.stringify(await actualUsage(db, id)) === JSON.stringify(expectedUsage(all));
    return {
      days,
      perDay,
      backfillDays,
      total: all.length,
      finalRows: await db.predictionRecord.count({ where: { connectionId: id } }),
      mostRows,
      bound: (backfillDays + 3) * perDay,
      exact,
    };
  } finally {
    await service.close();
    await fake.close();
  }
}
