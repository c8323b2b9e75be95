import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseConfig, type Config } from "../config.js";

// Only the entry points (src/main.ts, vault:rotate) read the development secrets; src/config.ts stays pure.

const LOCAL_SECRETS_FILE = path.resolve(".local/secrets.env");

/** The secrets a developer machine generates for itself, and how. */
const LOCAL_SECRETS: Record<string, () => string> = {
  TOKEN_ENCRYPTION_KEYS: () => `local${new Date().toISOString().slice(0, 10).replace(/-/g, "")}:${randomBytes(32).toString("base64")}`,
  API_TOKEN: () => randomBytes(24).toString("base64url"),
  SUPPORT_TOKEN: () => randomBytes(24).toString("base64url"),
};

/**
 * Outside production, missing secrets are generated once into a git-ignored file, so a fresh checkout
 * starts with nothing set; a file written by an older version gets the ones it lacks appended.
 */
export function withLocalSecrets(
  env: Record<string, string | undefined>,
  file = LOCAL_SECRETS_FILE,
  warn: (message: string) => void = () => undefined,
): Record<string, string | undefined> {
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v));
  if (env.NODE_ENV === "production" || Object.keys(LOCAL_SECRETS).every((name) => given[name])) return env;
  const local = existsSync(file) ? parseEnvFile(readFileSync(file, "utf8")) : {};
  const added = Object.entries(LOCAL_SECRETS)
    .filter(([name]) => !local[name] && !given[name])
    .map(([name, generate]) => [name, generate()] as const);
  if (added.length > 0) {
    mkdirSync(path.dirname(file), { recursive: true });
    appendFileSync(file, added.map(([name, value]) => `${name}=${value}\n`).join(""), { mode: 0o600 });
    warn(`generated ${added.map(([name]) => name).join(", ")} for development in ${file}; set them in production`);
  }
  return { ...local, ...Object.fromEntries(added), ...given };
}

/** KEY=value lines; the value is everything after the first "=". */
const parseEnvFile = (text: string) => Object.fromEntries([...text.matchAll(/^([^=\n]*)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));

/** The process configuration: the environment, plus outside production the generated development secrets. */
export function loadConfig(): Config {
  return parseConfig(withLocalSecrets(process.env, LOCAL_SECRETS_FILE, (m) => process.emitWarning(m)));
}
