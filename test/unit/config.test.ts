import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { withLocalSecrets } from "../../src/cli/local-secrets.js";
import { ConfigError, parseConfig } from "../../src/config.js";

const KEY = `k1:${randomBytes(32).toString("base64")}`;
const GOOD = { TOKEN_ENCRYPTION_KEYS: KEY, API_TOKEN: "x".repeat(32), SUPPORT_TOKEN: "y".repeat(32) };

function problems(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

test("defaults point at the local services", () => {
  const config = parseConfig(GOOD);
  expect(config.databaseUrl).toBe("postgresql://postgres@127.0.0.1:5432/replicate_usage_sync");
  expect(config.redisUrl).toBe("redis://127.0.0.1:6379");
  expect(config.replicate.baseUrl).toBe("https://api.replicate.com/v1");
  expect(config.sync).toMatchObject({ backfillDays: 90, lookbackHours: 24 });
  expect(config.encryption.currentKeyId).toBe("k1");
  expect(Object.isFrozen(config)).toBe(true);
});

test("one error names every bad variable", () => {
  const found = problems({
    DATABASE_URL: "mysql://nope",
    REDIS_URL: "not a url",
    TOKEN_ENCRYPTION_KEYS: "k1:c2hvcnQ=",
    REPLICATE_API_BASE_URL: "ftp://x",
    SYNC_INTERVAL_MINUTES: "0",
    BACKFILL_DAYS: "many",
    LOOKBACK_HOURS: "-1",
    PORT: "70000",
    LOG_LEVEL: "loud",
    API_TOKEN: "short",
    SUPPORT_TOKEN: "short",
  });
  for (const name of [
    "DATABASE_URL",
    "REDIS_URL",
    "TOKEN_ENCRYPTION_KEYS",
    "REPLICATE_API_BASE_URL",
    "SYNC_INTERVAL_MINUTES",
    "BACKFILL_DAYS",
    "LOOKBACK_HOURS",
    "PORT",
    "LOG_LEVEL",
    "API_TOKEN",
    "SUPPORT_TOKEN",
  ]) {
    expect(found.some((p) => p.startsWith(`${name}:`))).toBe(true);
  }
  expect(found.join("\n")).not.toContain("c2hvcnQ");
});

test("missing secrets and an unknown current key are named", () => {
  expect(problems({}).map((p) => p.split(":")[0])).toEqual(["TOKEN_ENCRYPTION_KEYS", "API_TOKEN", "SUPPORT_TOKEN"]);
  expect(problems({ ...GOOD, TOKEN_ENCRYPTION_KEY_ID: "k9" })).toEqual([expect.stringMatching(/^TOKEN_ENCRYPTION_KEY_ID: "k9" is not in/)]);
});

test("development creates a local key file once; production refuses to start without one", () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "rus-")), "secrets.env");
  const warnings: string[] = [];
  const first = withLocalSecrets({}, file, (m) => warnings.push(m));
  const second = withLocalSecrets({}, file, (m) => warnings.push(m));
  expect(warnings).toHaveLength(1);
  expect(first).toEqual(second);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(file, "utf8")).toContain("TOKEN_ENCRYPTION_KEYS=");
  expect(first.SUPPORT_TOKEN).toMatch(/^.{24,}$/);
  expect(first.SUPPORT_TOKEN).not.toBe(first.API_TOKEN);
  expect(parseConfig(first).encryption.keys.size).toBe(1);

  const prod = withLocalSecrets({ NODE_ENV: "production" }, file);
  expect(() => parseConfig(prod)).toThrow(ConfigError);
  expect(problems({ ...GOOD, NODE_ENV: "production", TOKEN_ENCRYPTION_KEYS: "k1:bad" })[0]).toMatch(/^TOKEN_ENCRYPTION_KEYS:/);
});

test("the support token is a second, different secret", () => {
  expect(problems({ ...GOOD, SUPPORT_TOKEN: GOOD.API_TOKEN })).toEqual([
    expect.stringMatching(/^SUPPORT_TOKEN: must differ from API_TOKEN/),
  ]);
  expect(parseConfig(GOOD).http.supportToken).toBe(GOOD.SUPPORT_TOKEN);
});

test("a local secrets file written before SUPPORT_TOKEN existed gets one added; its other secrets are kept", () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "rus-")), "secrets.env");
  writeFileSync(file, `TOKEN_ENCRYPTION_KEYS=${KEY}\nAPI_TOKEN=${GOOD.API_TOKEN}\n`, { mode: 0o600 });
  const warnings: string[] = [];
  const env = withLocalSecrets({}, file, (m) => warnings.push(m));
  expect(env).toMatchObject({ TOKEN_ENCRYPTION_KEYS: KEY, API_TOKEN: GOOD.API_TOKEN });
  expect(parseConfig(env).http.supportToken).toBe(env.SUPPORT_TOKEN);
  expect(withLocalSecrets({}, file)).toEqual(env);
  expect(warnings).toEqual([expect.stringContaining("SUPPORT_TOKEN")]);
  // Given the other two in the environment, the support token still comes from the file.
  expect(withLocalSecrets({ TOKEN_ENCRYPTION_KEYS: KEY, API_TOKEN: GOOD.API_TOKEN }, file).SUPPORT_TOKEN).toBe(env.SUPPORT_TOKEN);
});

describe("webhooks", () => {
  const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

  test("off when neither variable is set; on with both", () => {
    expect(parseConfig(GOOD).webhooks).toBeNull();
    expect(parseConfig({ ...GOOD, WEBHOOK_URL: "https://backend.example/hooks", WEBHOOK_SECRET: SECRET }).webhooks).toEqual({
      url: "https://backend.example/hooks",
      secret: SECRET,
    });
  });

  test("one without the other names the missing variable", () => {
    expect(problems({ ...GOOD, WEBHOOK_URL: "https://backend.example/hooks" })).toEqual([
      expect.stringMatching(/^WEBHOOK_SECRET: is required when WEBHOOK_URL is set/),
    ]);
    expect(problems({ ...GOOD, WEBHOOK_SECRET: SECRET })).toEqual([
      expect.stringMatching(/^WEBHOOK_URL: is required when WEBHOOK_SECRET is set/),
    ]);
  });

  test("a bad URL or secret is named, and the secret is never echoed", () => {
    for (const url of ["ftp://backend.example/hooks", "not a url", "https://user:pass@backend.example/hooks"]) {
      expect(problems({ ...GOOD, WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET })).toEqual([expect.stringMatching(/^WEBHOOK_URL: /)]);
    }
    for (const secret of ["plainsecretwithoutprefix", "whsec_c2hvcnQ=", "whsec_not base64!"]) {
      const found = problems({ ...GOOD, WEBHOOK_URL: "http://127.0.0.1:9/hooks", WEBHOOK_SECRET: secret });
      expect(found).toEqual([expect.stringMatching(/^WEBHOOK_SECRET: /)]);
      expect(found.join("\n")).not.toContain(secret);
    }
  });
});
