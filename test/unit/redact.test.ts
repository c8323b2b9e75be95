import { Writable } from "node:stream";
import winston from "winston";
import { REDACTED, redact, redactSecret } from "../../src/redact.js";
import { logger } from "../../src/logger.js";

const TOKEN = "r8_Zx9Qk2LmN4pR7sT1uV3wX5yA8bC0dE2fG4hJ";

test("masks a token inside a nested object and inside a message", () => {
  const out = redact({
    message: `request failed for ${TOKEN}`,
    request: { headers: { Authorization: `Bearer ${TOKEN}`, accept: "json" }, attempts: [{ note: `used ${TOKEN}` }] },
    apiToken: "anything-at-all",
    tokenKeyId: "k1",
  });
  expect(JSON.stringify(out)).not.toContain(TOKEN.slice(3));
  expect(out.request.headers.Authorization).toBe(REDACTED);
  expect(out.request.headers.accept).toBe("json");
  expect(out.apiToken).toBe(REDACTED);
  expect(out.tokenKeyId).toBe("k1");
  expect(out.message).toBe("request failed for r8_[REDACTED]");
});

test("the root logger writes JSON with secrets masked", () => {
  const lines: string[] = [];
  const sink = new winston.transports.Stream({ stream: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }) });
  logger.add(sink);
  try {
    logger
      .child({ module: "test", connectionId: "c1" })
      .warn(`Bearer ${TOKEN} rejected`, { detail: { token: TOKEN }, err: new Error(`bad ${TOKEN}`) });
  } finally {
    logger.remove(sink);
  }
  expect(lines).toHaveLength(1);
  const entry = JSON.parse(lines[0]!);
  expect(entry).toMatchObject({ level: "warn", module: "test", connectionId: "c1", message: `Bearer ${REDACTED} rejected` });
  expect(lines[0]).not.toContain(TOKEN.slice(3));
});

test("a known secret is removed by value whatever its shape and case; regex characters in it are literal", () => {
  expect(redactSecret("bad key sk-live.ABC+d(1) and SK-LIVE.abc+D(1)", "sk-live.ABC+d(1)")).toBe(`bad key ${REDACTED} and ${REDACTED}`);
  expect(redactSecret("sk-liveXABC+d(1)", "sk-live.ABC+d(1)")).toBe("sk-liveXABC+d(1)");
  expect(redactSecret("nothing to hide", "")).toBe("nothing to hide");
});
