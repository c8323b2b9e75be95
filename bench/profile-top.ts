import { readFileSync } from "node:fs";
import path from "node:path";

// `npm run profile-top <file.cpuprofile> [entries] [long ms]`: the top self-time entries of a V8 CPU
// profile (from `BENCH_CPU_PROF=<dir> npm run bench …` or `node --cpu-prof`), by function, by
// package and by owner (node's built-ins counted for the package that called them), so
// bench/ANALYSIS.md's profile tables can be reproduced. Shares are of all samples, idle included, and
// of the busy (non-idle) samples. Then the same for the long tasks alone (busy without a break for
// at least `long ms`, default 4): what holds the event loop while a reply waits in a socket.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, entriesArg, longArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: npm run profile-top <file.cpuprofile> [entries] [long ms]\n");
  process.exit(2);
}
const entries = Number(entriesArg ?? 25);
const longUs = Number(longArg ?? 4) * 1000;
const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node: each sample's time delta belongs to the node it landed in.
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i] ?? 0)));

const IDLE = new Set(["(idle)", "(program)"]);
const root = process.cwd() + path.sep;

/** Where a frame lives: the project file relative to the repository, or the package under node_modules. */
function place(url: string): { file: string; pkg: string } {
  const local = url.replace(/^file:\/\//, "");
  const nm = local.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = local.slice(nm + "/node_modules/".length).split("/");
    const pkg = rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
    return { file: rest.join("/"), pkg };
  }
  if (local.startsWith("node:") || (!local.startsWith("/") && local !== "")) return { file: local, pkg: "node (built-in)" };
  if (local === "") return { file: "", pkg: "(native / V8)" };
  const rel = local.startsWith(root) ? local.slice(root.length) : local;
  return { file: rel, pkg: rel.split("/").slice(0, 2).join("/") };
}

/** The package of the nearest frame on the stack (from `id` up) whose package `counts`, else `none`. */
function nearest(id: number, counts: (pkg: string) => boolean, none: string): string {
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const { url } = byId.get(at)!.callFrame;
    if (url && counts(place(url).pkg)) return place(url).pkg;
  }
  return none;
}

/** The package of the nearest frame with a script (native frames, e.g. a socket's writev, count for their JS caller). */
const caller = (id: number) => nearest(id, () => true, "(native / V8)");

/** The nearest package or project directory on the stack: node's built-ins (a socket's writev, an HTTP parser) count for the code that called them. */
const owner = (id: number) => nearest(id, (pkg) => pkg !== "node (built-in)", "node (built-in) only");

/** Self time by function, by package and by owner, of the samples `[id, µs]` given. */
function tally(samples: Iterable<[number, number]>) {
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  const owners = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of samples) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (IDLE.has(functionName)) continue;
    busy += us;
    const { file: where } = place(url);
    const key = `${functionName || "(anonymous)"}\t${where ? `${where}:${lineNumber + 1}` : `(native) ← ${caller(id)}`}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    const group = functionName === "(garbage collector)" ? "(garbage collector)" : caller(id);
    packages.set(group, (packages.get(group) ?? 0) + us);
    const by = functionName === "(garbage collector)" ? group : owner(id);
    owners.set(by, (owners.get(by) ?? 0) + us);
  }
  return { functions, packages, owners, busy };
}

// Long tasks: runs of busy samples in time order, broken by an idle one.
const tasks: [number, number][][] = [[]];
profile.samples.forEach((id, i) => {
  if (IDLE.has(byId.get(id)!.callFrame.functionName)) tasks.push([]);
  else tasks.at(-1)!.push([id, Math.max(0, profile.timeDeltas[i] ?? 0)]);
});
const long = tasks.filter((t) => t.reduce((sum, [, us]) => sum + us, 0) >= longUs);

const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const pct = (us: number, of: number) => `${((100 * us) / of).toFixed(1)} %`;
const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
const tables = ({ functions, packages, owners, busy }: ReturnType<typeof tally>) => [
  "| self (busy share) | function | file:line |",
  "|---|---|---|",
  ...top(functions, entries).map(([key, us]) => {
    const [fn, where] = key.split("\t");
    return `| ${pct(us, busy)} | ${fn} | ${where || "—"} |`;
  }),
  "",
  "| self (busy share) | package or directory (native frames count for their JS caller) |",
  "|---|---|",
  ...top(packages, 15).map(([pkg, us]) => `| ${pct(us, busy)} | ${pkg} |`),
  "",
  "| self (busy share) | owner: the nearest package or project directory on the stack (node's built-ins count for it) |",
  "|---|---|",
  ...top(owners, 15).map(([pkg, us]) => `| ${pct(us, busy)} | ${pkg} |`),
];

const all = tally(selfUs);
const inLong = tally(long.flat());
const out: string[] = [
  `${path.basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${(all.busy / 1e6).toFixed(2)} s busy (${pct(all.busy, total)})`,
  "",
  ...tables(all),
  "",
  `Long tasks (≥ ${longUs / 1000} ms without a break): ${long.length}, ${(inLong.busy / 1e6).toFixed(2)} s (${pct(inLong.busy, all.busy)} of busy)`,
  "",
  ...tables(inLong),
];
process.stdout.write(`${out.join("\n")}\n`);
