import { Redis } from "ioredis";
import { z } from "zod";
import { ConfigError, loadProducerConfig, type ProducerConfig } from "./config.js";
import type { AppContext } from "./context.js";
import { boundedRead, createDb, type Db, type Queryable } from "./db/client.js";
import { Finality, coverageOf, readDays } from "./domain/coverage.js";
import { DAY_MS, addDays, isoDay, isoInstant, timeZoneName, unknownZone, utcDay } from "./domain/calendar.js";
import { ConflictError, ServiceUnavailableError, ValidationError } from "./errors.js";
import { EventKind } from "./generated/prisma/enums.js";
import { HEALTH_STATES, STATUSES_OF, connectionHealth } from "./domain/health.js";
import { connectionView } from "./api/schemas.js";
import { readErasure, requestErasure, requestWorkspaceErasure } from "./lifecycle/erase.js";
import { printableText } from "./domain/text.js";
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
import { JobQueues } from "./queue/queues.js";
import { TokenVault } from "./vault.js";

// The typed API the backend calls in-process and the HTTP routes call: neither job data nor any return value carries the token.

export { loadProducerConfig, type ProducerConfig } from "./config.js";

const log = moduleLogger("producer");

/** AppContext is one; the vault is only needed to store tokens. */
export type ProducerContext = Pick<AppContext, "db" | "queues"> & { config: ProducerConfig; vault: TokenVault | null };

function vaultOf(ctx: ProducerContext): TokenVault {
  if (!ctx.vault) throw new ConfigError(["TOKEN_ENCRYPTION_KEYS: storing a token needs the service's encryption keys"]);
  return ctx.vault;
}

const replicateToken = z
  .string()
  .trim()
  .min(8, "token is too short")
  .max(512, "token is too long")
  .regex(/^[A-Za-z0-9_\-.]+$/, "token has characters a Replicate API token never has");
export const workspaceId = printableText(200);
export const connectInput = z.strictObject({ workspaceId, token: replicateToken });
/** An Idempotency-Key header value: printable, as clients generate them (UUIDs, ULIDs, hashes). */
export const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,200}$/, "Idempotency-Key must be 1-200 printable ASCII characters");
export const tokenInput = z.strictObject({ token: replicateToken });
export const connectionId = z.uuid({ message: "connection id must be a UUID" });

const limit = z.coerce.number().int().min(1).max(200).default(50);
const issuedCursor = (decode: (c: string) => unknown) =>
  z
    .string()
    .refine((c) => decode(c) !== null, "cursor was not issued by this API")
    .optional();

export const listConnectionsInput = z.strictObject({
  limit,
  cursor: issuedCursor(decodeConnectionCursor),
  state: z.enum(HEALTH_STATES).optional(),
  workspaceId: workspaceId.optional(),
  /** Matches the connection id, the workspace id or the Replicate account name (substring, any case). */
  q: printableText(200).optional(),
});

export const listEventsInput = z.strictObject({
  kind: z.enum(EventKind).optional(),
  since: isoInstant.optional(),
  limit,
  cursor: issuedCursor(events.decodeCursor),
});

/** Daily rows for a year and a month either side of it: enough for any finance comparison, and a bound on every query's days. */
export const MAX_USAGE_DAYS = 400;
/** Rows and idle-floor lines of one answer: more would hold the event loop (and every job of the process) while it is serialized. */
export const MAX_USAGE_LINES = 50_000;

/** The usage query, checked across fields (the HTTP route extends it with `format`). */
export const usageInput = z
  .strictObject({
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
  })
  .superRefine((q, ctx) => {
    const issue = (path: keyof typeof q, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (!q.workspaceId && !q.connectionId) issue("workspaceId", "give workspaceId or connectionId");
    if (q.from > q.to) issue("from", "from must not be after to");
    const days = (Date.parse(q.to) - Date.parse(q.from)) / DAY_MS + 1;
    if (days > MAX_USAGE_DAYS) {
      const last = addDays(q.from, MAX_USAGE_DAYS - 1);
      issue("to", `from..to spans ${days} days; a query covers at most ${MAX_USAGE_DAYS} (from ${q.from}, to ${last} at the latest)`);
    }
    if (q.fillZeros && !q.groupBy.includes("date")) issue("fillZeros", "fillZeros needs date in groupBy");
  });

/** Each issue is a `field: problem` line. */
const invalid = (...issues: string[]) => new ValidationError(`invalid input: ${issues.join("; ")}`, issues);

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(...result.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`));
  return result.data;
}

/** A reader that needs the database only (the prices CLI opens nothing else). */
type Reader = Pick<ProducerContext, "db">;

const validated =
  <S extends z.ZodType, R>(schema: S, run: (db: Db, input: z.output<S>) => Promise<R>) =>
  (ctx: Reader, input: z.input<S>) =>
    run(ctx.db, parse(schema, input));

/** Runs a job-queue operation; Redis not answering becomes a 503 the caller can retry. */
const queue = <T>(what: string, op: () => Promise<T>): Promise<T> =>
  op().catch((err: unknown) => {
    log.warn("job queue unavailable", { what, error: err });
    throw new ServiceUnavailableError(`the job queue (Redis) is not answering: ${what}; retry later`);
  });

/** Stores the token encrypted, creates the pending connection and queues its verification; not queued, it is removed again (503). */
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

/** Stores a new token and verifies it again; while Redis is down, 503, and the reconciler verifies it later. */
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

/** Deletes the token under the row lock (no page is written after); without Redis too: the reconciler removes the scheduler. */
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

/** Starts a sync now: one already pending serves it; one running is followed by another as it ends. */
export async function syncNow(ctx: ProducerContext, id: string): Promise<void> {
  const row = await connections.requireConnection(ctx.db, parse(connectionId, id));
  if (row.status !== "connected") throw new ConflictError(`connection is ${row.status}; only connected connections sync`);
  await connections.requestSync(ctx.db, id, new Date());
  await queue("sync not queued", () => ctx.queues.enqueue("tick", { connectionId: id }, { afterActive: true }));
}

/** The row's fields the view schema has (it leaves out the others), with the run in progress and its health. */
const toView = (r: ConnectionRow, now: Date) => connectionView.parse({ ...r, currentRun: r.checkpoint, health: connectionHealth(r, now) });

export async function getConnection(ctx: ProducerContext, id: string) {
  const row = await getConnectionRow(ctx.db, parse(connectionId, id));
  if (!row) throw connections.connectionNotFound(id);
  const view = toView(row, new Date());
  // Only Postgres is needed to answer: without Redis the next sync time is unknown (null).
  const nextSyncAt = view.status === "connected" ? await ctx.queues.nextSyncAt(view.id).catch(() => null) : null;
  return { ...view, nextSyncAt };
}

/** Newest first (createdAt, id); a state filter is decided from the health of each row the statuses select. */
export async function listConnections(ctx: ProducerContext, query: z.input<typeof listConnectionsInput> = {}) {
  const { state, ...q } = parse(listConnectionsInput, query);
  const now = new Date();
  const { rows, nextCursor } = await listConnectionRows(
    ctx.db,
    { ...q, statuses: state && STATUSES_OF[state] },
    state && ((r) => connectionHealth(r, now).state === state),
  );
  return { connections: rows.map((r) => toView(r, now)), nextCursor };
}

export async function listEvents(ctx: ProducerContext, id: string, query: z.input<typeof listEventsInput> = {}) {
  const q = parse(listEventsInput, query);
  await connections.requireConnection(ctx.db, parse(connectionId, id));
  return events.listEvents(ctx.db, id, { ...q, since: q.since ? new Date(q.since) : undefined });
}

const COST_NOTE =
  "estimatedCostUsd is an estimate from this service's price book (Replicate publishes no billing API), " +
  "not an invoice; costBasis says how each row was priced and idleFloor lines are dedicated deployments' minimum instances.";

/** The calendar (ICU) and the usage query (Postgres) must both know a zone by its name, or they would mean different zones. */
async function requireSharedZone(db: Db, zone: string | null | undefined): Promise<void> {
  if (zone && !(await workspaces.postgresZones(db)).has(zone)) throw invalid(`timeZone: ${unknownZone(zone)}`);
}

/** Rows, idle floor and finality's days in one snapshot, stopped after USAGE_QUERY_TIMEOUT_MS; aborting `signal` cancels it. */
export async function queryUsage(ctx: ProducerContext, query: z.input<typeof usageInput>, options: { signal?: AbortSignal } = {}) {
  const input = parse(usageInput, query);
  await requireSharedZone(ctx.db, input.timeZone);
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
  const disconnected = new Set(sources.filter((s) => s.disconnected).map((s) => s.connectionId));
  const filled = q.fillZeros ? fillZeroDays(found, q.groupBy, readDays(spans, byConnection, disconnected), MAX_USAGE_LINES) : found;
  if (!filled || filled.length + idleFloor.length > MAX_USAGE_LINES) {
    throw invalid(`groupBy: the answer would hold more than ${MAX_USAGE_LINES} lines; ask for a shorter range or fewer groupBy columns`);
  }
  const rows = filled.map((r) => ({ ...r, final: finality.row(r.connectionId, r.date) }));
  const coverage = spans.map((c) => finality.describe(c));
  const deployments = q.groupBy.includes("deployment") ? await currentDeployments(ctx.db, q) : undefined;
  return { from: q.from, to: q.to, timeZone, groupBy: q.groupBy, costNote: COST_NOTE, coverage, rows, idleFloor, deployments };
}

export const workspaceSettingsInput = z.strictObject({
  timeZone: timeZoneName
    .nullable()
    .describe("IANA time zone usage queries of the workspace use when they name none (e.g. Asia/Kolkata); null is UTC"),
});

export const getWorkspaceSettings = validated(workspaceId, workspaces.readWorkspaceSettings);

/** Sets all of a workspace's settings (a PUT). */
export async function updateWorkspaceSettings(ctx: Reader, id: string, input: z.input<typeof workspaceSettingsInput>) {
  const settings = parse(workspaceSettingsInput, input);
  await requireSharedZone(ctx.db, settings.timeZone);
  return workspaces.writeWorkspaceSettings(ctx.db, parse(workspaceId, id), settings);
}

export const erasureInput = z.strictObject({
  disconnect: z.boolean().default(false).describe("disconnect first (the token is deleted) instead of refusing"),
});

/** Returns once the request is recorded (a job erases); while Redis is down the reconciler queues it later. */
export async function eraseConnection(ctx: ProducerContext, id: string, options: z.input<typeof erasureInput> = {}) {
  const cid = parse(connectionId, id);
  if (parse(erasureInput, options).disconnect) await disconnect(ctx, cid);
  return requestErasure(ctx, cid);
}

/** eraseConnection for every disconnected connection of the workspace (with `disconnect: true`, every connection). */
export async function eraseWorkspace(ctx: ProducerContext, workspace: string, options: z.input<typeof erasureInput> = {}) {
  const ws = parse(workspaceId, workspace);
  if (parse(erasureInput, options).disconnect) {
    for (const c of await workspaceErasures(ctx.db, ws)) if (c.status !== "disconnected") await disconnect(ctx, c.connectionId);
  }
  return requestWorkspaceErasure(ctx, ws);
}

export const getErasure = (ctx: ProducerContext, id: string) => readErasure(ctx, parse(connectionId, id));

export async function listDeployments(ctx: Reader, id: string) {
  const found = await connectionDeployments(ctx.db, parse(connectionId, id));
  if (!found) throw connections.connectionNotFound(id);
  return found;
}

export const priceBookInput = z.strictObject({ asOf: isoDay.optional() });

export async function getPriceBook(ctx: Reader, query: z.input<typeof priceBookInput> = {}) {
  const asOf = parse(priceBookInput, query).asOf ?? utcDay(new Date());
  return { asOf, ...(await prices.readPriceBook(ctx.db, { asOf })) };
}

export const listPriceHistory = (ctx: Reader) => prices.readPriceBook(ctx.db, { history: true });

// The price book is append-only: each call records one row, so a correction is a later row with the same effectiveFrom.
export const recordHardwarePrice = validated(hardwarePriceInput, prices.recordHardwarePrice);
export const recordModelPrice = validated(modelPriceInput, prices.recordModelPrice);

/** A SKU without a price on that day would leave the model unpriced, so it is refused. */
export const recordModelHardware = validated(modelHardwareInput, async (db, mapping) => {
  const row = await prices.recordModelHardware(db, mapping);
  if (row) return row;
  throw invalid(
    `sku: the price book has no price for ${mapping.sku} on ${mapping.effectiveFrom}; record one first (POST /v1/prices/hardware)`,
  );
});

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

/** Postgres, Redis and the job queues: what the producer and the service both open. */
export function openStores(config: ProducerConfig, poolSize: number) {
  const db = createDb(config.databaseUrl, poolSize);
  // BullMQ workers need maxRetriesPerRequest: null (they wait for Redis); the same connection serves
  // the rate cap. Enqueues and reads (the API, bull-board, metrics) fail within seconds instead, so a
  // request never hangs while Redis is down.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const commands = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  // Reconnect attempts fail every few seconds while Redis is down; /readyz and the failing requests say so.
  for (const client of [redis, commands]) client.on("error", (err) => log.debug("redis connection error", { error: err }));
  // Job names carry the workspace so an operator can find one in the queue dashboard.
  const queues = new JobQueues(commands, config, (connectionId) => connections.workspaceOf(db, connectionId));
  return {
    db,
    redis,
    queues,
    async close() {
      await queues.close();
      redis.disconnect();
      commands.disconnect();
      await db.$disconnect();
    },
  };
}

/** Without TOKEN_ENCRYPTION_KEYS it reads but cannot store tokens: connect and replaceToken then throw. */
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
