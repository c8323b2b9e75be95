import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { stripVTControlCharacters } from "node:util";
import { adminQuery } from "../../dev/postgres.js";
import { waitFor } from "../../dev/wait-for.js";

// `npm run demo` end to end, as a newcomer runs it (minus `npm run generate`, which jest's run did):
// piped (CI logs), in a terminal under CI, and in a terminal where it keeps serving until Ctrl-C.

const DEMO = ["--import", "tsx", "demo/run.ts"];

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const running: ChildProcess[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

function start(env: Record<string, string | undefined>, terminal = false): Run {
  const { NODE_OPTIONS: _jestVmFlags, CI: _ci, ...inherited } = process.env;
  // util-linux `script` gives the demo a pseudo-terminal, as a developer's shell would. It runs the
  // command through $SHELL; `exec` makes the demo the terminal's only process, since dash (CI's
  // /bin/sh) would otherwise stay as its parent and die of the Ctrl-C itself (exit 130).
  const [command, args] = terminal
    ? ["script", ["-qfec", ["exec", process.execPath, ...DEMO].join(" "), "/dev/null"]]
    : [process.execPath, DEMO];
  const child = spawn(command, args as string[], {
    env: { ...inherited, ...(terminal ? { SHELL: "/bin/sh" } : {}), ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  running.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

async function databaseExists(output: string): Promise<boolean> {
  const name = /Database (rus_demo_\w+)/.exec(stripVTControlCharacters(output))?.[1];
  expect(name).toBeDefined();
  return (await adminQuery("SELECT 1 FROM pg_database WHERE datname = $1", [name])).length > 0;
}

test("piped, with no admin database where it looks first: the whole walkthrough, no colour codes, nothing left behind", async () => {
  const run = start({ TEST_DATABASE_ADMIN_URL: "postgresql://postgres@127.0.0.1:5432/rus_no_such_admin_db" });
  const code = await run.exited;
  const raw = run.output();
  expect({ code, raw }).toMatchObject({ code: 0 });
  expect(raw).not.toMatch(/\x1b\[/); // no ANSI escape anywhere
  expect(raw).toMatch(/connected; last successful sync \d{4}-/);
  expect(raw).toMatch(/│ day +│ predictions +│ succeeded/); // the daily usage table
  expect(raw).toMatch(/│ \d{4}-\d\d-\d\d │ \d+ +│/);
  expect(raw).toMatch(/by model\/deployment: .*stability-ai\/sdxl via acme\/sdxl-prod/);
  expect(raw).not.toMatch(/(?<!stability-ai\/sdxl) via acme\/sdxl-prod/); // the deployment serves one model
  expect(raw).toMatch(/rate_limited .*retrying in 1s/s);
  expect(raw).toMatch(/in progress after the backfill: [1-9]\d*; after the next run: 0/);
  expect(raw).toMatch(/the next run read only the lookback: predictions created in the last 2[45]\.\d h/);
  expect(raw).toMatch(/status: credential_error/);
  expect(raw).toMatch(/credential_invalid/);
  expect(raw).toMatch(/stored token is gone \(token_ciphertext is NULL\)/);
  expect(raw).not.toMatch(/r8_demo[0-9a-f]{24}/); // the customer's token is never printed
  expect(raw).not.toMatch(/Serving/);
  expect(await databaseExists(raw)).toBe(false);
}, 90_000);

test("in a terminal under CI=true the demo exits by itself after the walkthrough", async () => {
  const run = start({ CI: "true" }, true);
  expect(await run.exited).toBe(0);
  const output = stripVTControlCharacters(run.output());
  expect(output).toMatch(/stored token is gone/);
  expect(output).not.toMatch(/Serving/);
  expect(await databaseExists(output)).toBe(false);
}, 90_000);

test("in a terminal it keeps serving the support page with the printed credentials until Ctrl-C, then cleans up", async () => {
  const run = start({}, true);
  const text = await waitFor(
    "the serving banner",
    async () => stripVTControlCharacters(run.output()),
    (o) => /Press Ctrl-C/.test(o),
    80_000,
  );
  const url = /Support page: (http:\/\/127\.0\.0\.1:\d+\/ui\/)/.exec(text)?.[1];
  const supportToken = /support token \(read-only\): (\S+)/.exec(text)?.[1];
  expect({ url, supportToken }).toEqual({ url: expect.any(String), supportToken: expect.any(String) });
  const auth = { authorization: `Basic ${Buffer.from(`support:${supportToken}`).toString("base64")}` };
  expect((await fetch(url!, { headers: auth })).status).toBe(200);
  expect((await fetch(new URL("/v1/connections", url).toString(), { headers: auth })).status).toBe(200);
  run.child.stdin!.write("\x03"); // Ctrl-C, through the terminal
  expect(await run.exited).toBe(0);
  await expect(fetch(url!)).rejects.toThrow();
  expect(await databaseExists(run.output())).toBe(false);
}, 120_000);

test("interrupted in the middle of the walkthrough, it still drops its database", async () => {
  const run = start({});
  await waitFor(
    "the backfill under way",
    async () => run.output(),
    (o) => /Verify, then the 30-day backfill/.test(o),
    60_000,
  );
  run.child.kill("SIGINT");
  await run.exited;
  expect(await databaseExists(run.output())).toBe(false);
}, 90_000);
