import { z } from "zod";
import { ConfigError, loadProducerConfig, type ProducerConfig } from "./config.js";
import type { AppContext } from "./context.js";
import { boundedRead, type Queryable } from "./db/client.js";
import { Finality, coverageOf, readDays } from "./domain/coverage.js";
import { DAY_MS, addDays, isoDay, isoInstant, timeZoneName, utcDay } from "./domain/calendar.js";
import { ConflictError, ServiceUnavailableError, ValidationError } from "./errors.js";
import { EventKind } from "./generated/prisma/enums.js";
import { HEALTH_STATES, STATUSES_OF, connectionHealth } from "./domain/health.js";
import {
  connectionView,
  type connectionDetail,
  type connectionPage,
  type erasureView,
  type eventPage,
  type workspaceErasure,
} from "./api/schemas.js";
import { readErasure, requestErasure, requestWorkspaceErasure } from "./lifecycle/erase.js";
import { GROUP_BY } from "./domain/usage-measures.js";
import { moduleLogger } from "./logger.js";
import {
  coverageSources,
  decodeConnectionCursor,
  getConnectionRow,
  listConnectionRows,
  type ConnectionRow,
} from "./repositories/connection-views.js";
import * as connections from "./repositories/connections.js";
import { workspaceErasures } from "./repositories/erasure.js";
import { connectionDeployments, currentDeployments } from "./repositories/deployments.js";
import * as events from "./repositories/events.js";
import * as prices from "./repositories/prices.js";
import { hardwarePriceInput, modelHardwareInput, modelPriceInput } from "./pricing/schemas.js";
import { fillZeroDays, queryIdleFloor, queryUsage as readUsage } from "./repositories/usage-query.js";
import * as workspaces from "./repositories/workspace-settings.js";
import { openStores } from "./stores.js";
import { TokenVault } from "./vault.js";

// The typed API the backend calls in-process, and the contract the HTTP routes validate with and
// answer through (src/api/routes call these same functions). Job data never carries the token, and
// no return value does.

export { loadProducerConfig, type ProducerConfig } from "./config.js";

const log = moduleLogger("producer");

/** What the producer functions need: the database, the queues (Redis), the settings and, to store tokens, the vault. AppContext is one. */
export type ProducerContext = Pick<AppContext, "db" | "queues"> & { config: ProducerConfig; vault: TokenVault | null };

function vaultOf(ctx: ProducerContext): TokenVault {
  if (!ctx.vault) throw new ConfigError(["TOKEN_ENCRYPTION_KEYS: storing a token needs the service's encryption keys"]);
  return ctx.vault;
}

export const replicateToken = z
  .string()
  .trim()
  .min(8, "token is too short")
  .max(512, "token is too long")
  .regex(/^[A-Za-z0-9_\-.]+$/, "token has characters a Replicate API token never has");
/** Printable text: a NUL or control character is a 400 here, never a database error later. */
export const workspaceId = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]+$/u, "workspaceId must not contain control characters");
export const connectInput = z.object({ workspaceId, token: replicateToken }).strict();
/** An Idempotency-Key header value: printable, as clients generate them (UUIDs, ULIDs, hashes). */
export const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,200}$/, "Idempotency-Key must be 1-200 printable ASCII characters");
export const tokenInput = z.object({ token: replicateToken }).strict();
export const connectionId = z.uuid({ message: "connection id must be a UUID" });

const limit = z.coerce.number().int().min(1).max(200).default(50);
const issuedCursor = (decode: (c: string) => unknown) =>
  z
    .string()
    .refine((c) => decode(c) !== null, "cursor was not issued by this API")
    .optional();

export const listConnectionsInput = z
  .object({
    limit,
    cursor: issuedCursor(decodeConnectionCursor),
    state: z.enum(HEALTH_STATES).optional(),
    workspaceId: workspaceId.optional(),
    /** Matches the connection id, the workspace id or the Replicate account name (substring, any case). */
    q: z.string().trim().min(1).max(200).optional(),
  })
  .strict();

export const listEventsInput = z
  .object({
    kind: z.enum(EventKind).optional(),
    since: isoInstant.optional(),
    limit,
    cursor: issuedCursor(events.decodeCursor),
  })
  .strict();

/** Daily rows for a year and a month either side of it: enough for any finance comparison, and a bound on every query's days. */
export const MAX_USAGE_DAYS = 400;
/** Rows and idle-floor lines of one answer: more would hold the event loop (and every job of the process) while it is serialized. */
export const MAX_USAGE_LINES = 50_000;

/** The usage query's fields; `usageRules` adds the checks between them (the HTTP route adds `format`). */
export const usageFields = {
  workspaceId: workspaceId.optional(),
  connectionId: z.uuid().optional(),
  from: isoDay.describe(`first local day of the range (in timeZone), inclusive; from..to spans at most ${MAX_USAGE_DAYS} days`),
  to: isoDay.describe(`last local day of the range (in timeZone), inclusive; from..to spans at most ${MAX_USAGE_DAYS} days`),
  timeZone: timeZoneName
    .optional()
    .describe(
      "IANA time zone of the days (from, to, the date dimension, coverage, fillZeros), e.g. America/Los_Angeles; default: the workspace's (settings), else UTC",
    ),
  groupBy: z
    .array(z.enum(GROUP_BY))
    .refine((a) => new Set(a).size === a.length, "groupBy lists a column twice")
    .default(["date", "model", "deployment"]),
  /** Zero rows for days read but without usage (never for days not read yet); needs date in groupBy. */
  fillZeros: z.boolean().default(false),
};

type UsageFields = z.output<z.ZodObject<typeof usageFields>>;

function checkUsage(q: UsageFields, ctx: z.RefinementCtx): void {
  const issue = (path: keyof UsageFields, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  if (!q.workspaceId && !q.connectionId) issue("workspaceId", "give workspaceId or connectionId");
  if (q.from > q.to) issue("from", "from must not be after to");
  const days = (Date.parse(q.to) - Date.parse(q.from)) / DAY_MS + 1;
  if (days > MAX_USAGE_DAYS) {
    const last = addDays(q.from, MAX_USAGE_DAYS - 1);
    issue("to", `from..to spans ${days} days; a query covers at most ${MAX_USAGE_DAYS} (from ${q.from}, to ${last} at the latest)`);
  }
  if (q.fillZeros && !q.groupBy.includes("date")) issue("fillZeros", "fillZeros needs date in groupBy");
}

/** The usage query over `shape` (usageFields, plus `format` on HTTP): strict, and checked across fields. */
export function usageRules<T extends typeof usageFields>(shape: T) {
  // The checks read only the usage fields, which every extension keeps.
  return z.strictObject(shape).superRefine((q, ctx) => checkUsage(q as UsageFields, ctx));
}
export const usageInput = usageRules(usageFields);

/** Each issue is a `field: problem` line. */
const invalid = (...issues: string[]) => new ValidationError(`invalid input: ${issues.join("; ")}`, issues);

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(...result.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`));
  return result.data;
}

/** Runs a job-queue operation; Redis not answering becomes a 503 the caller can retry. */
async function queue<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    log.warn("job queue unavailable", { what, error: err });
    throw new ServiceUnavailableError(`the job queue (Redis) is not answering: ${what}; retry later`);
  }
}

/**
 * Stores the token encrypted, creates the connection (pending) and enqueues its verification. With
 * an idempotency key, a retry returns the connection the first request created. When the
 * verification cannot be queued, the connection is removed again (503): nothing is left for a
 * retrying client to duplicate.
 */
export async function connect(
  ctx: ProducerContext,
  input: z.input<typeof connectInput>,
  options: { idempotencyKey?: string } = {},
): Promise<connections.PublicConnection> {
  const vault = vaultOf(ctx);
  const parsed = parse(connectInput, input);
  const key = options.idempotencyKey === undefined ? undefined : parse(idempotencyKey, options.idempotencyKey);
  const { row, created } = await connections.createIdempotently(ctx.db, vault, { ...parsed, idempotencyKey: key });
  if (!created) {
    if (!connections.storesToken(vault, row, parsed.token) && row.status !== "disconnected") {
      throw new ConflictError("this Idempotency-Key was used for another token");
    }
    return connections.toPublic(row);
  }
  try {
    await queue("verification not queued; nothing was created", () => ctx.queues.enqueue("verify", { connectionId: row.id }));
  } catch (err) {
    await connections.deleteNewConnection(ctx.db, row.id);
    throw err;
  }
  await events.recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "connected",
    message: "token stored; verification queued",
  });
  log.info("connection created", { connectionId: row.id, workspaceId: parsed.workspaceId });
  return connections.toPublic(row);
}

/**
 * Stores a new token (e.g. after a credential error) and verifies it again; syncing resumes on
 * success. While Redis is down: 503, and the stored token is verified once Redis is back (reconciler).
 */
export async function replaceToken(ctx: ProducerContext, id: string, token: string): Promise<connections.PublicConnection> {
  const row = await connections.replaceToken(ctx.db, vaultOf(ctx), parse(connectionId, id), parse(replicateToken, token));
  await events.recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "token_replaced",
    message: "token replaced; verification queued",
  });
  await queue("token stored; it is verified as soon as the queue is back", async () => {
    await ctx.queues.removeScheduler(row.id);
    await ctx.queues.enqueue("verify", { connectionId: row.id });
  });
  return connections.toPublic(row);
}

/**
 * Deletes the stored token before returning, marks the connection disconnected and stops all of its
 * jobs. Idempotent. Runs under the connection's row lock, so no page can be written after it. Works
 * while Redis is down too: jobs left behind find no token and stop, and the reconciler removes the
 * scheduler once Redis answers.
 */
export async function disconnect(ctx: ProducerContext, id: string): Promise<connections.PublicConnection> {
  const row = await connections.disconnect(ctx.db, parse(connectionId, id));
  try {
    await ctx.queues.removeScheduler(id);
    const removed = await ctx.queues.removePendingJobs(id);
    log.info("connection disconnected", { connectionId: id, pendingJobsRemoved: removed });
  } catch (err) {
    log.warn("connection disconnected; its jobs are cleaned up when Redis answers", { connectionId: id, error: err });
  }
  return connections.toPublic(row);
}

/** Starts a sync now, or does nothing if one is already pending or running. */
export async function syncNow(ctx: ProducerContext, id: string): Promise<void> {
  const row = await connections.requireConnection(ctx.db, parse(connectionId, id));
  if (row.status !== "connected") throw new ConflictError(`connection is ${row.status}; only connected connections sync`);
  await queue("sync not queued", () => ctx.queues.enqueue("tick", { connectionId: id }));
}

/** A connection as support reads it: the row, the run in progress and its health. */
export type ConnectionView = z.output<typeof connectionView>;
export type ConnectionDetail = z.output<typeof connectionDetail>;
export type ConnectionPage = z.output<typeof connectionPage>;
/** Typed as queryUsage builds it: the rows from the measures table (the response schema leaves them loose). */
export type UsageReport = Awaited<ReturnType<typeof queryUsage>>;
export type EventPage = z.output<typeof eventPage>;
export type ErasureView = z.output<typeof erasureView>;
export type WorkspaceErasure = z.output<typeof workspaceErasure>;

/** The row's fields the view schema has (it leaves out the others), with the run in progress and its health. */
const toView = (r: ConnectionRow, now: Date): ConnectionView =>
  connectionView.parse({ ...r, currentRun: r.checkpoint, health: connectionHealth(r, now) });

/** One connection with its health and, while it is connected, when its next scheduled sync runs. */
export async function getConnection(ctx: ProducerContext, id: string): Promise<ConnectionDetail> {
  const row = await getConnectionRow(ctx.db, parse(connectionId, id));
  if (!row) throw connections.connectionNotFound(id);
  const view = toView(row, new Date());
  // Only Postgres is needed to answer: without Redis the next sync time is unknown (null).
  const nextSyncAt = view.status === "connected" ? await ctx.queues.nextSyncAt(view.id).catch(() => null) : null;
  return { ...view, nextSyncAt };
}

/** Connections with their health, newest first (createdAt, id), filtered by state, workspace or text, a page at a time. */
export async function listConnections(ctx: ProducerContext, query: z.input<typeof listConnectionsInput> = {}): Promise<ConnectionPage> {
  const { state, ...q } = parse(listConnectionsInput, query);
  const now = new Date();
  const { rows, nextCursor } = await listConnectionRows(
    ctx.db,
    { ...q, statuses: state && STATUSES_OF[state] },
    state && ((r) => connectionHealth(r, now).state === state),
  );
  return { connections: rows.map((r) => toView(r, now)), nextCursor };
}

/** A connection's event log (what support reads), newest first, a page at a time. */
export async function listEvents(ctx: ProducerContext, id: string, query: z.input<typeof listEventsInput> = {}): Promise<EventPage> {
  const q = parse(listEventsInput, query);
  await connections.requireConnection(ctx.db, parse(connectionId, id));
  return events.listEvents(ctx.db, id, { ...q, since: q.since ? new Date(q.since) : undefined });
}

export const COST_NOTE =
  "estimatedCostUsd is an estimate from this service's price book (Replicate publishes no billing API), " +
  "not an invoice; costBasis says how each row was priced and idleFloor lines are dedicated deployments' minimum instances.";

/**
 * Usage rows (predictions, status counts, compute seconds, estimated cost) with idle-floor lines and
 * coverage, over local days of the query's zone; each row and each covered day says whether it is
 * final. What grows with the range (rows, idle floor, the days finality reads) is read in one snapshot,
 * stopped after USAGE_QUERY_TIMEOUT_MS in all (QueryTimeoutError); aborting `signal` (the HTTP client
 * went away) cancels it.
 */
export async function queryUsage(ctx: ProducerContext, query: z.input<typeof usageInput>, options: { signal?: AbortSignal } = {}) {
  const input = parse(usageInput, query);
  const timeZone = input.timeZone ?? (await workspaces.defaultTimeZone(ctx.db, input)) ?? "UTC";
  const q = { ...input, timeZone };
  const now = new Date();
  const limits = { timeoutMs: ctx.config.usage.timeoutMs, signal: options.signal };
  const read = async (sql: Queryable) => {
    const { rows, days } = await readUsage(sql, q, MAX_USAGE_LINES + 1);
    return [rows, await queryIdleFloor(sql, q, MAX_USAGE_LINES + 1 - rows.length), days] as const;
  };
  const [[found, idleFloor, days], sources] = await Promise.all([
    boundedRead(ctx.db, limits, read),
    coverageSources(ctx.db, { workspaceId: q.workspaceId, connectionId: q.connectionId }),
  ]);
  const finality = new Finality(sources, days, q, ctx.config.sync, now);
  const spans = sources.map((s) => coverageOf(s, q));
  const byConnection = q.groupBy.includes("connection");
  const filled = q.fillZeros ? fillZeroDays(found, q.groupBy, readDays(spans, byConnection), MAX_USAGE_LINES) : found;
  if (!filled || filled.length + idleFloor.length > MAX_USAGE_LINES) {
    throw invalid(`groupBy: the answer would hold more than ${MAX_USAGE_LINES} lines; ask for a shorter range or fewer groupBy columns`);
  }
  const rows = filled.map((r) => ({ ...r, final: finality.row(r.connectionId, r.date) }));
  const coverage = spans.map((c) => finality.describe(c));
  const deployments = q.groupBy.includes("deployment") ? await currentDeployments(ctx.db, q) : undefined;
  return { from: q.from, to: q.to, timeZone, groupBy: q.groupBy, costNote: COST_NOTE, coverage, rows, idleFloor, deployments };
}

export const workspaceSettingsInput = z
  .object({
    timeZone: timeZoneName
      .nullable()
      .describe("IANA time zone usage queries of the workspace use when they name none (e.g. Asia/Kolkata); null is UTC"),
  })
  .strict();

/** A workspace's settings (the defaults when it never set any). */
export async function getWorkspaceSettings(ctx: Pick<ProducerContext, "db">, id: string): Promise<workspaces.WorkspaceSettings> {
  return workspaces.readWorkspaceSettings(ctx.db, parse(workspaceId, id));
}

/** Sets a workspace's settings (all of them: a PUT). */
export async function updateWorkspaceSettings(
  ctx: Pick<ProducerContext, "db">,
  id: string,
  input: z.input<typeof workspaceSettingsInput>,
): Promise<workspaces.WorkspaceSettings> {
  return workspaces.writeWorkspaceSettings(ctx.db, parse(workspaceId, id), parse(workspaceSettingsInput, input));
}

/** How an erasure is asked for: `disconnect` first disconnects what is not disconnected yet (else 409 / skipped). */
export const erasureInput = z
  .object({ disconnect: z.boolean().default(false).describe("disconnect first (the token is deleted) instead of refusing") })
  .strict();

/**
 * Erases a disconnected connection's history (ledger, usage rows, deployment releases, run state),
 * irreversibly, in a job: this returns once the request is recorded (`in_progress`), or `erased`.
 * The connection stays as a tombstone with its event log; usage and coverage leave it out from now
 * on. A connection not disconnected is a ConflictError unless `disconnect: true`. Asking again
 * returns the same erasure; while Redis is down the reconciler queues it once Redis answers.
 */
export async function eraseConnection(ctx: ProducerContext, id: string, options: z.input<typeof erasureInput> = {}): Promise<ErasureView> {
  const cid = parse(connectionId, id);
  if (parse(erasureInput, options).disconnect) await disconnect(ctx, cid);
  return requestErasure(ctx, cid);
}

/** eraseConnection for every disconnected connection of the workspace (with `disconnect: true`, every connection). */
export async function eraseWorkspace(
  ctx: ProducerContext,
  workspace: string,
  options: z.input<typeof erasureInput> = {},
): Promise<WorkspaceErasure> {
  const ws = parse(workspaceId, workspace);
  if (parse(erasureInput, options).disconnect) {
    for (const c of await workspaceErasures(ctx.db, ws)) if (c.status !== "disconnected") await disconnect(ctx, c.connectionId);
  }
  return requestWorkspaceErasure(ctx, ws);
}

/** Where a connection's erasure stands: not_requested, in_progress (with counts so far) or erased. */
export async function getErasure(ctx: ProducerContext, id: string): Promise<ErasureView> {
  return readErasure(ctx, parse(connectionId, id));
}

/** A connection's deployments as last read from Replicate: hardware SKU, instance bounds, current release. */
export async function listDeployments(ctx: Pick<ProducerContext, "db">, id: string) {
  const found = await connectionDeployments(ctx.db, parse(connectionId, id));
  if (!found) throw connections.connectionNotFound(id);
  return found;
}

export const priceBookInput = z.object({ asOf: isoDay.optional() }).strict();

/** The price book in force on a day (default today). */
export async function getPriceBook(ctx: Pick<ProducerContext, "db">, query: z.input<typeof priceBookInput> = {}) {
  const asOf = parse(priceBookInput, query).asOf ?? utcDay(new Date());
  return { asOf, ...(await prices.readPriceBook(ctx.db, { asOf })) };
}

/** Every recorded price change, newest first. */
export const listPriceHistory = (ctx: Pick<ProducerContext, "db">) => prices.readPriceBook(ctx.db, { history: true });

// The price book is append-only: each call records one row, so a correction is a later row with the same effectiveFrom.
export const recordHardwarePrice = (ctx: Pick<ProducerContext, "db">, input: z.input<typeof hardwarePriceInput>) =>
  prices.recordHardwarePrice(ctx.db, parse(hardwarePriceInput, input));

export const recordModelPrice = (ctx: Pick<ProducerContext, "db">, input: z.input<typeof modelPriceInput>) =>
  prices.recordModelPrice(ctx.db, parse(modelPriceInput, input));

/** Maps a public model to hardware; a SKU without a price on that day would leave the model unpriced, so it is refused. */
export async function recordModelHardware(ctx: Pick<ProducerContext, "db">, input: z.input<typeof modelHardwareInput>) {
  const mapping = parse(modelHardwareInput, input);
  const row = await prices.recordModelHardware(ctx.db, mapping);
  if (row) return row;
  throw invalid(
    `sku: the price book has no price for ${mapping.sku} on ${mapping.effectiveFrom}; record one first (POST /v1/prices/hardware)`,
  );
}

const OPERATIONS = {
  connect,
  replaceToken,
  disconnect,
  syncNow,
  getConnection,
  listConnections,
  listEvents,
  queryUsage,
  eraseConnection,
  eraseWorkspace,
  getErasure,
  getWorkspaceSettings,
  updateWorkspaceSettings,
  listDeployments,
  getPriceBook,
  listPriceHistory,
  recordHardwarePrice,
  recordModelPrice,
  recordModelHardware,
};
type Bound<F> = F extends (ctx: never, ...args: infer A) => infer R ? (...args: A) => R : never;

/** The producer bound to its own connections, for a backend that runs it in-process. */
export type Producer = { [K in keyof typeof OPERATIONS]: Bound<(typeof OPERATIONS)[K]> } & {
  /** Closes its database pool and Redis connection. */
  close(): Promise<void>;
};

/**
 * Opens the producer on the service's database and Redis, from the same variables the service reads
 * (loadProducerConfig: no API or support token needed). Without TOKEN_ENCRYPTION_KEYS it reads but
 * cannot store tokens: connect and replaceToken then throw.
 */
export function createProducer(config: ProducerConfig = loadProducerConfig()): Producer {
  const stores = openStores(config, 4);
  const keys = config.encryption;
  const ctx: ProducerContext = { ...stores, config, vault: keys && new TokenVault(keys.keys, keys.currentKeyId) };
  const bound = Object.entries(OPERATIONS).map(([name, op]) => [
    name,
    (...args: never[]) => (op as (...a: unknown[]) => unknown)(ctx, ...args),
  ]);
  return { ...(Object.fromEntries(bound) as Omit<Producer, "close">), close: () => stores.close() };
}
