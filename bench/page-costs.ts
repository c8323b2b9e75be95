import http from "node:http";
import got from "got";
import { ReplicateClient } from "../src/replicate/client.js";
import { predictionPageSchema } from "../src/replicate/schemas.js";
import { FakeReplicate } from "../dev/fake-replicate.js";
import { generatePredictions } from "../dev/predictions.js";
import { get } from "./backfill.js";
import { median } from "./support.js";

// `node --import tsx bench/page-costs.ts`: the CPU of one page's parts, each alone, in this process
// against an in-process fake (the fake's serving is in the figures of the HTTP rows, the same for
// each client). Figures: median over rounds of CPU (user + system) per call. Recorded in bench/ANALYSIS.md.

const ROUNDS = 7;
const CALLS = 300;
const token = "r8_pageCosts0000000000000000";
const fake = new FakeReplicate();
const base = await fake.start();
fake.addAccount(token, { type: "user", username: "costs" }, generatePredictions({ count: 100, days: 1, seed: 1 }));
const url = `${base}/predictions`;
const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
const body = await (await fetch(url, { headers })).text();
const json: unknown = JSON.parse(body);
const agent = new http.Agent({ keepAlive: true });
const plain = got.extend({ agent: { http: agent }, retry: { limit: 0 } });
const client = new ReplicateClient({ baseUrl: base, timeoutMs: 10_000 });
const job = {
  connectionId: "7b0c2c86-8c1f-4a4b-9d53-6f9e4d3b2a10",
  runId: "7b0c2c86-8c1f-4a4b-9d53-6f9e4d3b2a11",
  window: "m3x1",
  page: 3,
};

const cases: [string, () => unknown][] = [
  ["JSON.parse of a 100-prediction page", () => JSON.parse(body)],
  ["zod: predictionPageSchema on 100 predictions", () => predictionPageSchema.parse(json)],
  ["job data JSON round trip (stringify + parse)", () => JSON.parse(JSON.stringify(job))],
  ["node:http GET + JSON.parse", async () => JSON.parse(await get(url, headers, agent))],
  ["fetch (undici) GET + JSON.parse", async () => (await fetch(url, { headers })).json()],
  ["got GET + JSON.parse", async () => JSON.parse((await plain.get(url, { headers })).body)],
  ["ReplicateClient.listPredictions (got + decode + zod)", () => client.listPredictions(token, {})],
];

const lines = ["| part | CPU per call |", "|---|---|"];
for (const [name, f] of cases) {
  for (let i = 0; i < 50; i++) await f();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const before = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) await f();
    const used = process.cpuUsage(before);
    rounds.push((used.user + used.system) / 1000 / CALLS);
  }
  lines.push(`| ${name} | ${median(rounds).toFixed(3)} ms |`);
}
process.stdout.write(`${lines.join("\n")}\n`);
agent.destroy();
await fake.close();
