import { spawn } from "node:child_process";
import { once } from "node:events";
import { stripVTControlCharacters } from "node:util";

// `npm run demo` end to end, as a newcomer runs it (minus `npm run generate`, which jest's run did).

test("the demo connects, backfills, shows usage, a 429 and a revoked token, disconnects, and cleans up", async () => {
  const { NODE_OPTIONS: _jestVmFlags, ...env } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "demo/run.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const [code] = await once(child, "exit");
  output = stripVTControlCharacters(output);
  expect({ code, output }).toMatchObject({ code: 0 });
  expect(output).toMatch(/connected; last successful sync \d{4}-/);
  expect(output).toMatch(/│ day +│ predictions +│ succeeded/); // the daily usage table
  expect(output).toMatch(/│ \d{4}-\d\d-\d\d │ \d+ +│/);
  expect(output).toMatch(/rate_limited .*retrying in 1s/s);
  expect(output).toMatch(/status: credential_error/);
  expect(output).toMatch(/credential_invalid/);
  expect(output).toMatch(/stored token is gone \(token_ciphertext is NULL\)/);
  expect(output).not.toMatch(/r8_demo[0-9a-f]{24}/); // the customer's token is never printed
}, 60_000);
