import { AsyncLocalStorage } from "node:async_hooks";
import winston from "winston";
import { redact } from "./redact.js";

// winston runs the whole format (redaction, JSON) before its transports drop entries below the
// level; dropping them first keeps debug logging on hot paths free when it is off.
const enabledOnly = winston.format((info) => (logger.isLevelEnabled(info.level) ? info : false))();

/** Fields every line logged inside a scope carries, e.g. the requestId of the HTTP request being served. */
export const logScope = new AsyncLocalStorage<Record<string, unknown>>();
const scoped = winston.format((info) => Object.assign(info, { ...logScope.getStore(), ...info }))();

/** Root JSON logger; every module takes a child with its own fields (module, jobId, connectionId). */
export const logger = winston.createLogger({
  level: process.env.LOG_LEVEL ?? "info",
  format: winston.format.combine(
    enabledOnly,
    scoped,
    winston.format.errors({ stack: true }),
    winston.format((info) => redact(info))(),
    winston.format.timestamp(),
    winston.format.json(),
  ),
  defaultMeta: { service: "replicate-usage-sync" },
  // Tests attach their own transports to read log lines; the console stays quiet there.
  transports: [new winston.transports.Console({ stderrLevels: ["error", "warn"], silent: process.env.NODE_ENV === "test" })],
});

export function moduleLogger(module: string, fields: Record<string, unknown> = {}): winston.Logger {
  return logger.child({ module, ...fields });
}
