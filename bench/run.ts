import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { logger } from "../src/logger.js";
import { backfill } from "./backfill.js";
import { fleet } from "./fleet.js";
import { ledger } from "./ledger.js";
import { memory } from "./memory.js";
import type { ProcessMemory } from "./service-process.js";
import { shippedRuntime } from "./shipped.js";
import { rateCap } from "./rate-cap.js";
import { FakeProcess, fmt } from "./support.js";
import { usageQuery } from "./usage-query.js";
import { usageZones } from "./usage-zones.js";
import { workers } from "./workers.js";
import { writePath } from "./write-path.js";

// `npm run bench [name]`: each benchmark against a loopback fake Replicate in its own process; each
// figure is a ratio to a floor measured side by side in the same run, because these machines are noisy.

logger.level = "warn";
const only = process.argv[2];
const wanted = (name: string) => !only || only === name;
const verdict = (met: boolean) => (met ? "met" : "**not met**");
const sections: string[] = [];
const out = (...lines: string[]) => {
  process.stdout.write(`${lines.join("\n")}\n\n`);
  sections.push(lines.join("\n"));
};

// Sizes: the issue's by default; smaller ones for a quick look (RESULTS.md says which were run).
const size = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const BACKFILL = size("BENCH_BACKFILL", 100_000);
const FLEET = size("BENCH_FLEET", 1000);
const USAGE_CONNECTIONS = size("BENCH_USAGE_CONNECTIONS", 1000);

// Most phases run the service in this process: with the runtime settings the image ships (bench/shipped.ts reads the
// Dockerfile), so they measure the service as deployed. Started without them (`npm run bench`), it runs itself again with them.
const runtime = shippedRuntime();
const missing = runtime.nodeFlags.filter((flag) => !process.execArgv.includes(flag));
if (missing.length > 0) {
  const again = spawn(process.execPath, [...process.execArgv, ...missing, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, ...runtime.env },
  });
  const [code] = (await once(again, "exit")) as [number | null];
  process.exit(code ?? 1);
}

const fake = await FakeProcess.start();
try {
  if (wanted("backfill")) {
    const rows = [
      { r: await backfill(fake, 0, BACKFILL), target: 1.5 },
      { r: await backfill(fake, 20, BACKFILL), target: 0.5 },
      { r: await backfill(fake, 20, BACKFILL, { parallelism: 1 }), target: 1.1 },
      { r: await backfill(fake, 20, BACKFILL, { busyDay: 0.8 }), target: 0.7 },
    ];
    out(
      `## Backfill: ${fmt(BACKFILL)} predictions, connect → exact aggregates, vs the sequential fetch floor`,
      "",
      "| page latency | BACKFILL_PARALLELISM | data | pages | sequential fetch floor | service | ratio | service CPU per page | target |",
      "|---|---|---|---|---|---|---|---|---|",
      ...rows.map(({ r, target }) => {
        const data = r.busyDay ? `${fmt(r.busyDay * 100)} % on one day` : "30 days";
        return `| ${r.latencyMs} ms | ${r.parallelism} | ${data} | ${r.pages} | ${fmt(r.floorMs)} ms | ${fmt(r.serviceMs)} ms | ${fmt(r.ratio, 2)}× | ${fmt(r.cpuMsPerPage, 2)} ms | ≤ ${fmt(target, 2)}× ${verdict(r.ratio <= target)} |`;
      }),
    );
  }
  if (wanted("write-path")) {
    const r = await writePath();
    out(
      "## Write path: one page of 100 predictions, service vs a prepared (named) `unnest` upsert of the same page (pg)",
      "",
      "| pages (alternating) | service per page | prepared unnest per page | ratio | target |",
      "|---|---|---|---|---|",
      `| ${r.pages - 10} | ${fmt(r.serviceMs / (r.pages - 10), 2)} ms | ${fmt(r.floorMs / (r.pages - 10), 2)} ms | ${fmt(r.ratio, 2)}× | ≤ 1.50× ${verdict(r.ratio <= 1.5)} |`,
    );
  }
  if (wanted("usage-zones")) {
    const r = await usageZones();
    const [utc, la, ktm] = [r.medianMs.UTC!, r.medianMs["America/Los_Angeles"]!, r.medianMs["Asia/Kathmandu"]!];
    out(
      `## Usage query: GET /v1/usage, ${r.connections} connections × ${r.days} days of quarter hours (${fmt(r.bucketRows)} rows), grouped by date and model`,
      "",
      "| answer rows | UTC days | America/Los_Angeles days | Asia/Kathmandu days | zone vs UTC (worst) | target |",
      "|---|---|---|---|---|---|",
      `| ${fmt(r.rows)} | ${fmt(utc)} ms | ${fmt(la)} ms | ${fmt(ktm)} ms | ${fmt(r.ratio, 2)}× | ≤ 2.00× ${verdict(r.ratio <= 2)} |`,
    );
  }
  if (wanted("fleet")) {
    const r = await fleet(fake, FLEET);
    out(
      `## Fleet tick: ${fmt(FLEET)} connected connections × 1 new page each`,
      "",
      `Medians of ${r.ticks.length} ticks, one after another in the same process; each tick's figures after them. A tick is timed from its enqueue to its last run's completion.`,
      "",
      "| concurrency | connection-syncs/s | service CPU per sync | of which GC pauses | BullMQ no-op jobs/s | jobs per sync | each tick: syncs/s at CPU (GC) per sync | target |",
      "|---|---|---|---|---|---|---|---|",
      `| ${r.concurrency} | ${fmt(r.syncsPerSecond)} | ${fmt(r.cpuMsPerSync, 2)} ms | ${fmt(r.gcMsPerSync, 2)} ms | ${fmt(r.noopJobsPerSecond)} | ${r.jobsPerSync} | ${r.ticks.map((t) => `${fmt(t.syncsPerSecond)} at ${fmt(t.cpuMsPerSync, 2)} (${fmt(t.gcMsPerSync, 2)}) ms`).join("; ")} | ≥ 300 syncs/s ${verdict(r.syncsPerSecond >= 300)}; ≤ 3 ms CPU ${verdict(r.cpuMsPerSync <= 3)} |`,
    );
  }
  if (wanted("workers")) {
    const r = await workers(fake, FLEET);
    const one = r.rows.find((row) => row.processes === 1)!;
    const two = r.rows.find((row) => row.processes === 2)!;
    const scaling = two.syncsPerSecond / one.syncsPerSecond;
    out(
      `## More than one core: the fleet tick (${fmt(FLEET)} connections × 1 new page) by ROLE=worker processes on one Redis and one Postgres, ${r.cores} cores`,
      "",
      "| worker processes | connection-syncs/s | vs 1 process | CPU per sync: workers + Postgres + Redis + fake = total | machine busy / idle (load average) | connections exactly counted |",
      "|---|---|---|---|---|---|",
      ...r.rows.map((row) => {
        const c = row.cpuMsPerSync;
        const cpu = [c.workers, c.postgres, c.redis, c.fake, c.workers + c.postgres + c.redis + c.fake].map((ms) => fmt(ms, 2)).join(" + ");
        return `| ${row.processes} | ${fmt(row.syncsPerSecond)} | ${fmt(row.syncsPerSecond / one.syncsPerSecond, 2)}× | ${cpu.replace(/ \+ (?=[^+]*$)/, " = ")} ms | ${fmt(row.machineBusy * 100)} % / ${fmt(row.machineIdle * 100)} % (${fmt(row.loadAverage, 1)}) | ${fmt(row.exact)} of ${fmt(r.connections)} ${verdict(row.exact === r.connections)} |`;
      }),
      "",
      `2 processes vs 1: ${fmt(scaling, 2)}× (target ≥ 1.60× on a machine with the cores to show it) ${verdict(scaling >= 1.6)}`,
    );
  }
  if (wanted("rate-cap")) {
    const r = await rateCap(fake);
    out(
      "## Rate cap: one token's backfill wanting far more than its cap (requests counted at the fake server)",
      "",
      "| configured | requests | over | mean/s | most in any 1 s window | target |",
      "|---|---|---|---|---|---|",
      `| ${r.configured}/s | ${r.requests} | ${fmt(r.seconds, 1)} s | ${fmt(r.meanPerSecond, 1)} | ${r.maxInAnySecond} | never above ${r.configured} ${verdict(r.maxInAnySecond <= r.configured)} |`,
    );
  }
  if (wanted("ledger")) {
    const r = await ledger();
    out(
      `## Ledger size: ${r.days} simulated days, ${fmt(r.perDay)} predictions a day, a run and the prune job every day (BACKFILL_DAYS=${r.backfillDays})`,
      "",
      "| predictions synced | ledger rows at the end | most ledger rows on any day | bound: predictions of the last BACKFILL_DAYS + 3 days | totals | target |",
      "|---|---|---|---|---|---|",
      `| ${fmt(r.total)} | ${fmt(r.finalRows)} | ${fmt(r.mostRows)} | ${fmt(r.bound)} | ${r.exact ? "exact" : "**wrong**"} | bounded ${verdict(r.mostRows <= r.bound && r.exact)} |`,
    );
  }
  if (wanted("memory")) {
    // The worker as the image runs it, beside node's and glibc's defaults.
    const rows = [
      { name: "node and glibc defaults", r: await memory(fake, {}) },
      {
        name: `as shipped: ${[...runtime.nodeFlags, ...Object.entries(runtime.env).map(([k, v]) => `${k}=${v}`)].join(" ")}`,
        r: await memory(fake, runtime),
      },
    ];
    const mb = (bytes: number) => fmt(bytes / 2 ** 20);
    const reading = (m: ProcessMemory) => `RSS ${mb(m.afterOneGc.rss)} → ${mb(m.usage.rss)} MB, heap ${mb(m.usage.heapUsed)} MB`;
    out(
      "## Memory: RSS of a worker process (ROLE=worker, its own process), 10 connections × 100k backfilled side by side",
      "",
      "RSS after one forced collection → once its sweeping is done (a second one); heap used after both. Growth and target on the latter.",
      "",
      "| runtime | after 10k predictions | after 1M predictions | RSS growth | peak RSS | worker CPU 10k → 1M | target |",
      "|---|---|---|---|---|---|---|",
      ...rows.map(({ name, r }) => {
        const growth = (r.afterLarge.usage.rss - r.afterSmall.usage.rss) / 2 ** 20;
        return `| ${name} | ${reading(r.afterSmall)} | ${reading(r.afterLarge)} (${fmt(r.large)} rows) | ${fmt(growth)} MB | ${mb(r.afterLarge.peakRss)} MB | ${fmt(r.cpuMs / 1000, 1)} s | < 50 MB ${verdict(growth < 50)} |`;
      }),
    );
  }
  if (wanted("usage-query")) {
    const r = await usageQuery(USAGE_CONNECTIONS);
    const kept = (during: number, alone: number) => during <= Math.max(2 * alone, alone + 20);
    out(
      `## Usage query at the longest allowed range: ${fmt(r.connections)} connections × ${r.days} days, a row and a dedicated deployment each day`,
      "",
      "| usage rows read | query (groupBy=date, fillZeros): median of back-to-back runs, stopped at the limit | sync write per page: alone → during | /healthz: alone → during | target |",
      "|---|---|---|---|---|",
      `| ${fmt(r.dailyRows)} | ${fmt(r.queryMs)} ms (${r.timedOut} of ${r.queries} stopped: 504) | ${fmt(r.writeAloneMs, 1)} → ${fmt(r.writeDuringMs, 1)} ms | ${fmt(r.healthAloneMs, 1)} → ${fmt(r.healthDuringMs, 1)} ms | answered or stopped within USAGE_QUERY_TIMEOUT_MS (${fmt(r.timeoutMs)} ms) + 1 s ${verdict(r.queryMs <= r.timeoutMs + 1000)}; write and /healthz within 2× (or +20 ms) ${verdict(kept(r.writeDuringMs, r.writeAloneMs) && kept(r.healthDuringMs, r.healthAloneMs))} |`,
    );
  }
} finally {
  await fake.stop();
}

if (!only) {
  const header = [
    "# Benchmark results",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` on ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "cpu"}, ` +
      `${fmt(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, local PostgreSQL and Redis. The fake Replicate runs in its own process;`,
    "every ratio compares figures measured side by side in the same run.",
  ].join("\n");
  const analysis = readFileSync(new URL("./ANALYSIS.md", import.meta.url), "utf8").trim();
  writeFileSync(new URL("./RESULTS.md", import.meta.url), `${[header, ...sections, analysis].join("\n\n")}\n`);
  process.stdout.write("bench/RESULTS.md written\n");
}
process.exit(0);
