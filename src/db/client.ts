import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { QueryTimeoutError } from "../errors.js";
import { PrismaClient } from "../generated/prisma/client.js";

// SQLSTATE 57014: a statement stopped by statement_timeout or a cancel request.
const QUERY_CANCELED = "57014";

/** Prisma over its pg pool, which the sync hot path uses for named (prepared) statements Prisma's raw queries cannot send. */
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

/** What runs one SQL statement: the pool, or one connection of it (a bounded read). */
export type Queryable = Pick<pg.ClientBase, "query">;

/**
 * Runs `read` in one read-only snapshot on one connection, within `timeoutMs` in all (statement_timeout, and a cancel between or
 * during statements: QueryTimeoutError); aborting `signal` cancels it too, rejecting with its reason. pg_cancel_backend is sent from
 * a connection of its own (a busy pool cannot delay it), and a connection that saw a failure is closed: no cancel reaches its next user.
 */
export async function boundedRead<T>(
  db: Db,
  limits: { timeoutMs: number; signal?: AbortSignal },
  read: (sql: Queryable) => Promise<T>,
): Promise<T> {
  limits.signal?.throwIfAborted();
  const client = await db.pool.connect();
  let cancelled: Promise<unknown> | undefined;
  let failed = false;
  let expired = false;
  let pid = 0;
  const cancel = () => {
    if (cancelled) return;
    const canceller = new pg.Client(db.pool.options);
    cancelled = canceller
      .connect()
      .then(() => canceller.query("SELECT pg_cancel_backend($1)", [pid]))
      .finally(() => canceller.end());
  };
  const deadline = setTimeout(() => {
    expired = true;
    if (pid) cancel();
  }, limits.timeoutMs);
  const timedOut = (cause?: unknown) =>
    new QueryTimeoutError(
      `the query ran longer than its limit of ${limits.timeoutMs} ms and was stopped; ask for less (a shorter range, fewer groupBy columns)`,
      { cause },
    );
  // Every statement of the read first checks the deadline: one that passed between two is not run.
  const bounded = {
    query: ((text: string, values?: unknown[]) =>
      expired ? Promise.reject(timedOut()) : client.query(text, values)) as Queryable["query"],
  };
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const set = "SELECT pg_backend_pid() AS pid, set_config('statement_timeout', $1, true)";
    pid = (await client.query<{ pid: number }>(set, [String(Math.floor(limits.timeoutMs))])).rows[0]!.pid;
    limits.signal?.addEventListener("abort", cancel, { once: true });
    limits.signal?.throwIfAborted();
    const result = await read(bounded);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    failed = true;
    limits.signal?.throwIfAborted();
    if (err instanceof QueryTimeoutError) throw err;
    if (expired || (err as { code?: string }).code === QUERY_CANCELED) throw timedOut(err);
    throw err;
  } finally {
    clearTimeout(deadline);
    limits.signal?.removeEventListener("abort", cancel);
    await cancelled?.catch(() => undefined);
    client.release(failed);
  }
}

/** Readiness: resolves when the database answers a trivial query. */
export async function ping(db: Db): Promise<void> {
  await db.$queryRawUnsafe("SELECT 1");
}
