import os from "node:os";
import { adminQuery } from "../dev/postgres.js";
import type { AppContext } from "../src/context.js";
import { connectFleet, tickFleet } from "./fleet.js";
import { shippedRuntime } from "./shipped.js";
import { FakeProcess, machineCpuMs, processCpuMs, ServiceProcess, startBenchService } from "./support.js";

export interface WorkersRow {
  processes: number;
  syncsPerSecond: number;
  /** CPU per connection-sync of the worker processes together, of their Postgres backends, of Redis and of the fake. */
  cpuMsPerSync: { workers: number; postgres: number; redis: number; fake: number };
  /** Share of the machine's cores busy over the phase (anything running on it), and left idle. */
  machineBusy: number;
  machineIdle: number;
  /** One-minute load average when the phase started (other work on the machine shows here). */
  loadAverage: number;
  /** Connections whose usage after the phase is exactly what the fake holds for them. */
  exact: number;
}

export interface WorkersResult {
  connections: number;
  cores: number;
  rows: WorkersRow[];
}

const TOKEN_PREFIX = "r8_benchWorkers";
const FIRST_PAGE = 60;
const NEW_PER_ROUND = 10;
const WORKER_APP = "rus-bench-worker";

/** Redis's own CPU time so far (INFO cpu). */
async function redisCpuMs(ctx: AppContext): Promise<number> {
  const info = await ctx.redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0);
  return (field("used_cpu_sys") + field("used_cpu_user")) * 1000;
}

/** CPU so far of the Postgres backends serving the workers (their pools' connections, open through the phase). */
async function postgresCpuMs(): Promise<Map<number, number>> {
  const backends = await adminQuery<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [WORKER_APP]);
  return new Map(backends.map(({ pid }) => [pid, processCpuMs(pid)]));
}

/**
 * The fleet tick (every connection one new page) run by 1, 2 and 4 worker processes side by side on
 * one Redis and one Postgres: each a child process of the service's own entry point with ROLE=worker,
 * as deployed. In each phase the fleet ticks once to warm the processes up, every account gets new
 * predictions, and the measured tick follows; after it, every connection's usage must count each of
 * its predictions exactly once.
 */
export async function workers(fake: FakeProcess, connections = 1000, counts = [1, 2, 4]): Promise<WorkersResult> {
  await fake.send({ type: "accounts", tokenPrefix: TOKEN_PREFIX, accounts: connections, perAccount: FIRST_PAGE });
  // This process only connects and enqueues (no workers): the syncs run in the worker processes.
  const service = await startBenchService(fake.baseUrl, {}, false);
  const { ctx } = service;
  const database = new URL(service.env.DATABASE_URL!);
  // The workers' Postgres backends are told apart from this process's by their application_name.
  database.searchParams.set("application_name", WORKER_APP);
  const env = { ...service.env, ROLE: "worker", DATABASE_URL: database.toString() };
  // Each worker as the image runs it (node flags and runtime environment from the Dockerfile).
  const runtime = shippedRuntime();
  const start = (n: number) =>
    Promise.all(Array.from({ length: n }, () => ServiceProcess.start({ ...env, ...runtime.env }, runtime.nodeFlags)));
  const stop = (processes: ServiceProcess[]) => Promise.all(processes.map((p) => p.stop()));
  try {
    const setup = await start(Math.max(...counts));
    const ids = await connectFleet(ctx, TOKEN_PREFIX, connections).finally(() => stop(setup));
    const rows: WorkersRow[] = [];
    for (const [round, n] of counts.entries()) {
      const processes = await start(n);
      try {
        // Unmeasured: fresh processes compile their hot paths first, as a long-running worker has.
        await tickFleet(ctx, ids);
        await fake.send({ type: "grow", tokenPrefix: TOKEN_PREFIX, accounts: connections, count: NEW_PER_ROUND, round });
        const loadAverage = os.loadavg()[0]!;
        const before = {
          workers: processes.map((p) => p.cpuMs()),
          postgres: await postgresCpuMs(),
          redis: await redisCpuMs(ctx),
          fake: fake.cpuMs(),
          machine: machineCpuMs(),
        };
        const ms = await tickFleet(ctx, ids);
        const machine = machineCpuMs();
        const [busy, idle] = [machine.busy - before.machine.busy, machine.idle - before.machine.idle];
        const postgres = [...before.postgres].reduce((sum, [pid, cpu]) => sum + Math.max(0, processCpuMs(pid) - cpu), 0);
        const perSync = (ms: number) => ms / connections;
        const expected = FIRST_PAGE + NEW_PER_ROUND * (round + 1);
        const totals = await ctx.db.usageBucket.groupBy({
          by: ["connectionId"],
          where: { connectionId: { in: ids } },
          _sum: { predictions: true },
        });
        rows.push({
          processes: n,
          syncsPerSecond: (connections * 1000) / ms,
          cpuMsPerSync: {
            workers: perSync(processes.reduce((sum, p, i) => sum + p.cpuMs() - before.workers[i]!, 0)),
            postgres: perSync(postgres),
            redis: perSync((await redisCpuMs(ctx)) - before.redis),
            fake: perSync(fake.cpuMs() - before.fake),
          },
          machineBusy: busy / (busy + idle),
          machineIdle: idle / (busy + idle),
          loadAverage,
          exact: totals.filter((t) => t._sum.predictions === expected).length,
        });
      } finally {
        await stop(processes);
      }
    }
    return { connections, cores: os.cpus().length, rows };
  } finally {
    await service.close();
  }
}
