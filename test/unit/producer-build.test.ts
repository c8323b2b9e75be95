import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

// A backend imports the producer from the built package: the build emits its type declarations
// where package.json points.
test("the build emits dist/src/producer.d.ts with the readers and writers, where package.json exports it", () => {
  const pkg = JSON.parse(readFileSync("package.json", "utf8"));
  expect(pkg.exports["./producer"]).toEqual({ types: "./dist/src/producer.d.ts", import: "./dist/src/producer.js" });
  const out = mkdtempSync(path.join(tmpdir(), "producer-build-"));
  try {
    execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json", "--outDir", out], { stdio: "pipe" });
    const declarations = readFileSync(path.join(out, pkg.exports["./producer"].types.replace("./dist/", "")), "utf8");
    for (const name of [
      "connect",
      "replaceToken",
      "disconnect",
      "syncNow",
      "getConnection",
      "listConnections",
      "listEvents",
      "queryUsage",
      "createProducer",
    ]) {
      expect(declarations).toContain(`export declare function ${name}(`);
    }
    expect(declarations).toContain("loadProducerConfig");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 180_000);
