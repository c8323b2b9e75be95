import pg from "pg";
import { createConnection } from "../src/repositories/connections.js";
import { ledgerColumns } from "../src/repositories/usage.js";
import { predictionPageSchema, type Prediction } from "../src/replicate/schemas.js";
import { applyPages } from "../src/sync/engine.js";
import { beginRun } from "../src/sync/run.js";
import { generatePredictions } from "../dev/predictions.js";
import { startBenchService, timed } from "./support.js";

export interface WritePathResult {
  pages: number;
  perPage: number;
  serviceMs: number;
  floorMs: number;
  ratio: number;
}

/**
 * The database floor: the same page as one prepared (named) `unnest` upsert of the ledger with pg,
 * nothing else (no fence, no daily totals, no checkpoint). Prepared once per connection, so each
 * page pays only bind + execute + commit.
 */
const FLOOR = {
  name: "bench-floor-unnest",
  text: `INSERT INTO prediction_records AS p (connection_id, prediction_id, kind, model, version, deployment, status, source,
                                         created_at, started_at, completed_at, predict_time, total_time, input_tokens, output_tokens,
                                         data_removed)
  SELECT $1::uuid, * FROM unnest($2::text[], $3::"UsageKind"[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                 $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::float8[], $13::float8[],
                                 $14::bigint[], $15::bigint[], $16::boolean[])
  ON CONFLICT (connection_id, kind, prediction_id) DO UPDATE SET
    model = EXCLUDED.model, version = EXCLUDED.version, deployment = EXCLUDED.deployment,
    status = EXCLUDED.status, source = EXCLUDED.source, created_at = EXCLUDED.created_at, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, predict_time = EXCLUDED.predict_time, total_time = EXCLUDED.total_time,
    input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, data_removed = EXCLUDED.data_removed`,
};

function preparedUnnest(client: pg.Client, connectionId: string, rows: Prediction[]) {
  return client.query({ ...FLOOR, values: [connectionId, ...ledgerColumns(rows)] });
}

/**
 * Per-page cost of the service's write (fenced ledger upsert with quarter-hour usage deltas and checkpoint,
 * one statement) vs the prepared unnest floor, alternating page by page so both see the same machine.
 */
export async function writePath(pages = 300, perPage = 100): Promise<WritePathResult> {
  const service = await startBenchService("http://127.0.0.1:9/v1", {}, false);
  const { db, vault, config } = service.ctx;
  const ours = await createConnection(db, vault, "bench", "r8_benchWritePath");
  const floor = await createConnection(db, vault, "bench", "r8_benchWritePathFloor");
  await db.connection.updateMany({ data: { status: "connected" } });
  let { checkpoint } = (await beginRun(db, ours.id, config.sync))!;
  const windowId = Object.keys(checkpoint.windows)[0]!;
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
      const a = await timed(() =>
        applyPages(db, ours.id, checkpoint, windowId, [{ next: "more", results: page, rejected: [] }], { parallelism: 1 }),
      );
      if (!a.value.applied) throw new Error(`write-path bench: page ${i + 1} not applied`);
      checkpoint = a.value.checkpoint;
      const b = await timed(() => preparedUnnest(client, floor.id, page));
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
