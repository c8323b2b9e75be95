import { readFileSync } from "node:fs";
import { z } from "zod";
import { usageReport } from "../../src/api/schemas.js";
import {
  DIMENSION_FIELD,
  GROUP_BY,
  MEASURES,
  STATUS_COUNTS,
  STORED,
  answered,
  csvColumns,
  measureSelect,
  zeroMeasures,
} from "../../src/domain/usage-measures.js";
import { TERMINAL_STATUSES } from "../../src/domain/prediction-status.js";
import { addToUsage, usageDeltas } from "../../src/repositories/usage.js";

// Every list of usage measures is derived from the one table in src/domain/usage-measures.ts.

const names = (byStatus: boolean) => answered(byStatus).map((m) => m.name);
const reported = MEASURES.filter((m) => !("internal" in m)).map((m) => m.name);
const aliases = (select: string[]) => select.map((s) => /AS "(\w+)"$/.exec(s)?.[1]);

/** UsageBucket's fields in schema.prisma with their columns (the @map name, else the field's own). */
function usageColumns(): { field: string; column: string }[] {
  const model = /model UsageBucket \{([\s\S]*?)\n\}/.exec(readFileSync("prisma/schema.prisma", "utf8"))![1]!;
  return model
    .split("\n")
    .map((line) => /^\s+(\w+)\s+\w+/.exec(line) && { field: /\w+/.exec(line)![0], column: /@map\("(\w+)"\)/.exec(line)?.[1] })
    .filter((f): f is { field: string; column: string | undefined } => f !== null && f.field !== "connection")
    .map((f) => ({ field: f.field, column: f.column ?? f.field }));
}

test("the stored measures are UsageBucket's columns besides its key, under the same names", () => {
  const KEY = ["connectionId", "workspaceId", "bucketStart", "bucketMinutes", "kind", "model", "deployment", "source", "updatedAt"];
  const columns = usageColumns().filter((c) => !KEY.includes(c.field));
  expect(STORED.map((m) => ({ field: m.name, column: m.column }))).toEqual(columns);
});

test("the write's deltas and upsert columns are the stored measures, in order", () => {
  const deltas = usageDeltas("rows");
  expect([...deltas.matchAll(/ AS (\w+)/g)].map((m) => m[1])).toEqual([
    "bucket_start",
    "bucket_minutes",
    "source",
    ...STORED.map((m) => m.column),
  ]);
  const insert = /INSERT INTO usage_buckets AS d \(([^)]*)\)/.exec(addToUsage("$1", "$2", "t"))![1]!.split(", ");
  expect(insert).toEqual([
    "connection_id",
    "workspace_id",
    "bucket_start",
    "bucket_minutes",
    "kind",
    "model",
    "deployment",
    "source",
    ...STORED.map((m) => m.column),
    "updated_at",
  ]);
  expect(addToUsage("$1", "$2", "t")).toContain(STORED.map((m) => `${m.column} = d.${m.column} + EXCLUDED.${m.column}`).join(", "));
});

test("the query's SELECT list, zero rows and status rows answer the same measures", () => {
  expect(names(false)).toEqual(reported);
  expect(aliases(measureSelect(false))).toEqual(reported);
  expect(Object.keys(zeroMeasures(false))).toEqual(reported);
  expect(aliases(measureSelect(true))).toEqual(["predictions"]);
  expect(zeroMeasures(true)).toEqual({ predictions: 0 });
  expect(STATUS_COUNTS.map((m) => m.status)).toEqual([...TERMINAL_STATUSES, "in_progress", "other"]);
});

test("the API row schema (and so OpenAPI) and the CSV columns are the dimensions and the measures", () => {
  const row = (
    z.toJSONSchema(usageReport, { io: "output" }) as unknown as {
      properties: { rows: { items: { properties: object; required: string[] } } };
    }
  ).properties.rows.items;
  expect(Object.keys(row.properties)).toEqual([...GROUP_BY.map((g) => DIMENSION_FIELD[g]), ...reported, "final", "refreshedAt"]);
  expect(row.required).toEqual(["predictions", "final", "refreshedAt"]);
  expect(csvColumns(["date", "status", "model"])).toEqual(["line", "date", "model", "status", "predictions", "final", "refreshedAt"]);
  expect(csvColumns(["connection", "kind", "date"])).toEqual([
    "line",
    "connectionId",
    "kind",
    "date",
    ...reported,
    "final",
    "refreshedAt",
    "instanceSeconds",
  ]);
});
