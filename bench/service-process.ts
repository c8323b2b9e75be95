import { readFileSync } from "node:fs";
import v8 from "node:v8";

// The service's own entry point (src/main.ts, configured by its environment: ROLE, allocator, node
// flags) in a child process of a benchmark. This file only adds what the benchmark asks of it from
// outside: a message once the service has started, and its memory on request (after a forced GC).

export interface ProcessMemory {
  /** process.memoryUsage() after one collection, whose sweeping may still be running, bytes. */
  afterOneGc: NodeJS.MemoryUsage;
  /** process.memoryUsage() once that sweeping is done (a second collection completes it), bytes. */
  usage: NodeJS.MemoryUsage;
  /** Peak RSS of the process so far (VmHWM), bytes. */
  peakRss: number;
  /** RSS backed by anonymous memory (the heaps) and by files (the node binary and libraries), bytes. */
  anonymousRss: number;
  fileRss: number;
  /** Pages V8 holds for its heap spaces (physical_space_size), bytes. */
  v8Spaces: Record<string, number>;
  /** V8's own malloc'd memory (zones, compiler), bytes. */
  v8Malloced: number;
}

/** A /proc/self file's "Name: 123 kB" fields, in bytes. */
function procKb(file: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const m of readFileSync(`/proc/self/${file}`, "utf8").matchAll(/^(\w+):\s+(\d+) kB$/gm)) fields[m[1]!] = Number(m[2]) * 1024;
  return fields;
}

function measure(): ProcessMemory {
  // Started with --expose-gc: measure what is retained. A second collection finishes the first one's
  // concurrent sweeping, so pages (and buffers) it found dead are no longer counted.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const afterOneGc = process.memoryUsage();
  gc?.();
  const rollup = procKb("smaps_rollup");
  return {
    afterOneGc,
    usage: process.memoryUsage(),
    peakRss: procKb("status").VmHWM ?? 0,
    anonymousRss: rollup.Anonymous ?? 0,
    fileRss: (rollup.Rss ?? 0) - (rollup.Anonymous ?? 0),
    v8Spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size])),
    v8Malloced: v8.getHeapStatistics().malloced_memory,
  };
}

await import("../src/main.js");
process.on("message", (m: { type: "memory"; seq: number }) => {
  if (m.type === "memory") process.send!({ seq: m.seq, memory: measure() });
});
// The benchmark went away: stop as on SIGTERM.
process.on("disconnect", () => process.kill(process.pid, "SIGTERM"));
process.send!({ type: "ready" });
