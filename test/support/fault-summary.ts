import { appendFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface ScenarioRow {
  scenario: string;
  injected: string;
  outcome: string;
}

/** Where this jest run's fault scenarios are collected; the summary reporter prints them as a table. */
export function summaryFile(jestPid: number): string {
  return path.join(os.tmpdir(), `rus-fault-summary-${jestPid}.jsonl`);
}

/** Records one scenario's row; test files run in jest's worker processes, whose parent is jest itself. */
export function recordScenario(row: ScenarioRow): void {
  const jestPid = process.env.JEST_WORKER_ID && process.send ? process.ppid : process.pid;
  appendFileSync(summaryFile(jestPid), `${JSON.stringify(row)}\n`);
}
