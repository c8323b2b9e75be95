import { writeFileSync } from "node:fs";
import os from "node:os";
import { logger } from "../src/logger.js";
import { backfill } from "./backfill.js";
import { FakeProcess, fmt } from "./support.js";

// `npm run bench`: every benchmark against a loopback fake Replicate in its own process; each
// figure is a ratio to a floor measured in the same run, because these machines are noisy.

const only = process.argv[2];
const fake = await FakeProcess.start();
const sections: string[] = [];
const out = (text: string) => {
  process.stdout.write(`${text}\n`);
  sections.push(text);
};

try {
  if (!only || only === "backfill") {
    const rows = [];
    for (const latency of [20, 0]) rows.push(await backfill(fake, latency, 100_000));
    out(
      [
        "## Backfill: 100,000 predictions (1,000 pages), connect → exact aggregates, vs the fetch floor",
        "",
        "| page latency | pages | fetch floor | service | ratio | target |",
        "|---|---|---|---|---|---|",
        ...rows.map(
          (r) =>
            `| ${r.latencyMs} ms | ${r.pages} | ${fmt(r.floorMs)} ms | ${fmt(r.serviceMs)} ms | ${fmt(r.ratio, 2)}× | ≤ ${r.latencyMs ? "1.10" : "2.0"}× ${r.ratio <= (r.latencyMs ? 1.1 : 2) ? "met" : "NOT met"} |`,
        ),
        "",
      ].join("\n"),
    );
  }
} finally {
  await fake.stop();
}

if (!only) {
  const header = [
    "# Benchmark results",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, by \`npm run bench\`.`,
    "The fake Replicate runs in its own process; every ratio compares figures measured side by side in the same run.",
    "",
  ];
  writeFileSync(new URL("./RESULTS.md", import.meta.url), `${[...header, ...sections].join("\n")}\n`);
  logger.info("bench/RESULTS.md written");
}
process.exit(0);
