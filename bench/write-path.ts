import pg from "pg";
import { createConnection } from "../src/repositories/connections.js";
import { predictionPageSchema, type Prediction } from "../src/replicate/schemas.js";
import { applyPage } from "../src/sync/engine.js";
import { beginRun } from "../src/sync/run.js";
import { generatePredictions } from "../dev/predictions.js";
import { startService, timed } from "./support.js";

export interface WritePathResult {
  pages: number;
  perPage: number;
  serviceMs: number;
  floorMs: number;
  ratio: number;
}

const COLUMNS = [
  "connection_id",
  "prediction_id",
  "usage_date",
  "model",
  "version",
  "deployment",
  "status",
  "source",
  "created_at",
  "started_at",
  "completed_at",
  "predict_time",
  "total_time",
];

/** The floor: one bare multi-row INSERT … ON CONFLICT of the same rows with pg, nothing else. */
function bareInsert(client: pg.Client, connectionId: string, rows: Prediction[]) {
  const values: unknown[] = [];
  const tuples = rows.map((p) => {
    const row = [
      connectionId,
      p.id,
      p.created_at.toISOString().slice(0, 10),
      p.model ?? "",
      p.version,
      p.deployment ?? "",
      p.status,
      p.source,
      p.created_at,
      p.started_at,
      p.completed_at,
      p.metrics.predictTime,
      p.metrics.totalTime,
    ];
    values.push(...row);
    return `(${row.map((_, i) => `$${values.length - row.length + i + 1}`).join(", ")})`;
  });
  const updates = COLUMNS.slice(2)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(", ");
  return client.query(
    `INSERT INTO prediction_records (${COLUMNS.join(", ")}) VALUES ${tuples.join(", ")}
     ON CONFLICT (connection_id, prediction_id) DO UPDATE SET ${updates}`,
    values,
  );
}

/**
 * Per-page cost of the service's write (fenced ledger upsert with DailyUsage deltas and checkpoint,
 * one statement) vs the bare INSERT, alternating page by page so both see the same machine.
 */
export async function writePath(pages = 300, perPage = 100): Promise<WritePathResult> {
  const service = await startService("http://127.0.0.1:9/v1");
  await service.workers.close();
  const { db, vault, config } = service.ctx;
  const ours = await createConnection(db, vault, "bench", "r8_benchWritePath");
  const floor = await createConnection(db, vault, "bench", "r8_benchWritePathFloor");
  await db.connection.updateMany({ data: { status: "connected" } });
  let checkpoint = (await beginRun(db, ours.id, config.sync))!;
  const all = predictionPageSchema.parse({
    next: null,
    results: generatePredictions({ count: pages * perPage, days: 30, seed: 3 }).sort((a, b) => (a.created_at < b.created_at ? 1 : -1)),
  }).results;
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  let serviceMs = 0;
  let floorMs = 0;
  try {
    for (let i = 0; i < pages; i++) {
      const page = all.slice(i * perPage, (i + 1) * perPage);
      const a = await timed(() => applyPage(db, { connectionId: ours.id, checkpoint, predictions: page, next: "more" }));
      if (!a.value.applied) throw new Error(`write-path bench: page ${i + 1} not applied`);
      checkpoint = a.value.checkpoint;
      const b = await timed(() => bareInsert(client, floor.id, page));
      if (i >= 10) {
        // the first pages warm up connections and plans
        serviceMs += a.ms;
        floorMs += b.ms;
      }
    }
  } finally {
    await client.end();
    await service.close();
  }
  return { pages, perPage, serviceMs, floorMs, ratio: serviceMs / floorMs };
}
