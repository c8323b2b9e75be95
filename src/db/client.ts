import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";

/**
 * The Prisma 7 client over node-postgres (no native engine binary needed), plus the pg pool it runs
 * on: the sync hot path sends named (prepared) statements through `pool`, which Prisma's raw queries
 * do not (each would be parsed and planned again).
 */
export type Db = PrismaClient & { readonly pool: pg.Pool };

export function createDb(databaseUrl: string, poolSize = 10): Db {
  // JIT compiling a plan costs more than it saves on this service's statements: a usage query over
  // many quarter hours spent seconds emitting code for a sub-second read.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, options: "-c jit=off" });
  // Prisma ends the pool on $disconnect.
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  return Object.assign(prisma, { pool });
}

/** A statement prepared once per pooled connection and named after itself. */
export interface Prepared {
  name: string;
  text: string;
}

export async function runPrepared<R extends pg.QueryResultRow>(db: Db, statement: Prepared, values: unknown[]): Promise<R[]> {
  return (await db.pool.query<R>({ name: statement.name, text: statement.text, values })).rows;
}

/** Readiness: resolves when the database answers a trivial query. */
export async function ping(db: Db): Promise<void> {
  await db.$queryRawUnsafe("SELECT 1");
}
