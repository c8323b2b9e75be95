import { appendFileSync } from "node:fs";

export interface ScenarioRow {
  scenario: string;
  injected: string;
  outcome: string;
}

/**
 * Appends one scenario's row to this jest run's file, which fault-summary-reporter.mjs names (in an
 * environment variable jest's workers inherit) and prints as a table at the end.
 */
export function recordScenario(row: ScenarioRow): void {
  const file = process.env.RUS_FAULT_SUMMARY_FILE;
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
}
