import { Writable } from "node:stream";
import pg from "pg";
import winston from "winston";
import { logger } from "../../src/logger.js";

/** Every row of every table in the database, as one string, for "this never reaches storage" checks. */
export async function dumpDatabase(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    const parts: string[] = [];
    for (const { tablename } of tables) {
      const { rows } = await client.query(`SELECT row_to_json(t)::text AS j FROM ${client.escapeIdentifier(tablename)} t`);
      parts.push(...rows.map((r: { j: string }) => r.j));
    }
    return parts.join("\n");
  } finally {
    await client.end();
  }
}

/** Collects every line the root logger writes (after redaction) until stopped. */
export function captureLogs(): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const transport = new winston.transports.Stream({
    level: "silly",
    stream: new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  logger.add(transport);
  const level = logger.level;
  logger.level = "silly";
  return {
    lines,
    stop() {
      logger.remove(transport);
      logger.level = level;
    },
  };
}

/** Every place (name → text) that contains one of the tokens; empty when no secret leaked. */
export function findSecrets(tokens: string[], places: Record<string, string>): string[] {
  return Object.entries(places).flatMap(([place, text]) =>
    tokens.filter((t) => text.includes(t)).map((t) => `${t.slice(0, 6)}… in ${place}`),
  );
}
