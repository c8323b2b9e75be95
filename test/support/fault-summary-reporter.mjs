import { existsSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

// Prints the fault scenarios recorded by test/support/fault-summary.ts as one table after jest's summary.
const file = path.join(os.tmpdir(), `rus-fault-summary-${process.pid}.jsonl`);
// Reporters are built before jest starts its workers, which inherit this.
process.env.RUS_FAULT_SUMMARY_FILE = file;

export default class FaultSummaryReporter {
  onRunStart() {
    rmSync(file, { force: true });
  }

  onRunComplete() {
    if (!existsSync(file)) return;
    const rows = readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .sort((a, b) => a.scenario.localeCompare(b.scenario));
    rmSync(file, { force: true });
    const header = { scenario: "scenario", injected: "injected faults", outcome: "outcome" };
    const cols = ["scenario", "injected", "outcome"];
    const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => r[c].length))]));
    const line = (r) => `| ${cols.map((c) => r[c].padEnd(width[c])).join(" | ")} |`;
    const rule = `|${cols.map((c) => "-".repeat(width[c] + 2)).join("|")}|`;
    process.stdout.write(`\nFault and security scenarios\n${[line(header), rule, ...rows.map(line)].join("\n")}\n`);
  }
}
