import { z } from "zod";
import { ConfigError, loadProducerConfig, type ProducerConfig } from "./config.js";
import { openStores, type AppContext } from "./context.js";
import { Finality, coverageOf, readDays, type Coverage } from "./domain/coverage.js";
import { isoDay, isoInstant, timeZoneName } from "./domain/calendar.js";
import { ConflictError, ServiceUnavailableError, ValidationError } from "./errors.js";
import { EventKind } from "./generated/prisma/enums.js";
import { HEALTH_STATES } from "./domain/health.js";
import { GROUP_BY, type UsageRow } from "./domain/usage-measures.js";
import { moduleLogger } from "./logger.js";
import {
  coverageSources,
  decodeConnectionCursor,
  getConnectionView,
  listConnectionViews,
  type ConnectionView,
} from "./repositories/connection-views.js";
import * as connections from "./repositories/connections.js";
import { currentDeployments } from "./repositories/deployments.js";
import * as events from "./repositories/events.js";
import { fillZeroDays, queryIdleFloor, queryUsage as readUsage, type IdleFloorRow } from "./repositories/usage-query.js";
import * as workspaces from "./repositories/workspace-settings.js";
import { TokenVault } from "./vault.js";

// The typed API the backend calls in-process, and the contract the HTTP routes validate with and
// answer through (src/api/routes call these same functions). Job data never carries the token, and
// no return value does.

export { loadProducerConfig, type ProducerConfig } from "./config.js";

const log = moduleLogger("producer");

/** What every producer function needs: the database and the queues (Redis). AppContext is one. */
export type ProducerContext = Pick<AppContext, "db" | "queues">;
/** What storing a token needs besides: the vault that seals it. */
export type TokenContext = ProducerContext & Pick<AppContext, "vault">;

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

/** The usage query's fields; `usageRules` adds the checks between them (the HTTP route adds `format`). */
export const usageFields = {
  workspaceId: workspaceId.optional(),
  connectionId: z.uuid().optional(),
  from: isoDay.describe("first local day of the range (in timeZone), inclusive"),
  to: isoDay.describe("last local day of the range (in timeZone), inclusive"),
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
  if (q.fillZeros && !q.groupBy.includes("date")) issue("fillZeros", "fillZeros needs date in groupBy");
}

/** The usage query over `shape` (usageFields, plus `format` on HTTP): strict, and checked across fields. */
export function usageRules<T extends typeof usageFields>(shape: T) {
  // The checks read only the usage fields, which every extension keeps.
  return z.strictObject(shape).superRefine((q, ctx) => checkUsage(q as UsageFields, ctx));
}
export const usageInput = usageRules(usageFields);

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`);
    throw new ValidationError(`invalid input: ${issues.join("; ")}`, issues);
  }
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
  ctx: TokenContext,
  input: z.input<typeof connectInput>,
  options: { idempotencyKey?: string } = {},
): Promise<connections.PublicConnection> {
  const parsed = parse(connectInput, input);
  const key = options.idempotencyKey === undefined ? undefined : parse(idempotencyKey, options.idempotencyKey);
  const { row, created } = await connections.createIdempotently(ctx.db, ctx.vault, { ...parsed, idempotencyKey: key });
  if (!created) {
    if (!connections.storesToken(ctx.vault, row, parsed.token) && row.status !== "disconnected") {
      throw new ConflictError("this Idempotency-Key was used for another token");
    }
    return connections.toPublic(row);
  }
  try {
    await queue("verification not queued; nothing was created", () => ctx.queues.enqueueVerify(row.id));
  } catch (err) {
    await connections.deleteNewConnection(ctx.db, row.id);
    throw err;
  }
  await events.recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "connected",
    level: "info",
    message: "token stored; verification queued",
  });
  log.info("connection created", { connectionId: row.id, workspaceId: parsed.workspaceId });
  return connections.toPublic(row);
}

/**
 * Stores a new token (e.g. after a credential error) and verifies it again; syncing resumes on
 * success. While Redis is down: 503, and the stored token is verified once Redis is back (reconciler).
 */
export async function replaceToken(ctx: TokenContext, id: string, token: string): Promise<connections.PublicConnection> {
  const row = await connections.replaceToken(ctx.db, ctx.vault, parse(connectionId, id), parse(replicateToken, token));
  await events.recordEvent(ctx.db, {
    connectionId: row.id,
    kind: "token_replaced",
    level: "info",
    message: "token replaced; verification queued",
  });
  await queue("token stored; it is verified as soon as the queue is back", async () => {
    await ctx.queues.removeScheduler(row.id);
    await ctx.queues.enqueueVerify(row.id);
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
  await queue("sync not queued", () => ctx.queues.kickSync(id));
}

export type ConnectionDetail = ConnectionView & { nextSyncAt: Date | null };

/** One connection with its health and, while it is connected, when its next scheduled sync runs. */
export async function getConnection(ctx: ProducerContext, id: string): Promise<ConnectionDetail> {
  const view = await getConnectionView(ctx.db, parse(connectionId, id));
  if (!view) throw connections.connectionNotFound(id);
  // Only Postgres is needed to answer: without Redis the next sync time is unknown (null).
  const nextSyncAt = view.status === "connected" ? await ctx.queues.nextSyncAt(view.id).catch(() => null) : null;
  return { ...view, nextSyncAt };
}

export interface ConnectionPage {
  connections: ConnectionView[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** Connections with their health, newest first (createdAt, id), filtered by state, workspace or text, a page at a time. */
export async function listConnections(ctx: ProducerContext, query: z.input<typeof listConnectionsInput> = {}): Promise<ConnectionPage> {
  return listConnectionViews(ctx.db, parse(listConnectionsInput, query));
}

export interface EventPage {
  events: events.EventView[];
  nextCursor: string | null;
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

export interface UsageReport {
  from: string;
  to: string;
  /** The zone the days are in: the query's, else the workspace's default, else UTC. */
  timeZone: string;
  groupBy: z.output<typeof usageFields.groupBy>;
  costNote: string;
  /** How much of the range each connection in scope has read, so "no usage" is told from "not synced yet". */
  coverage: Coverage[];
  rows: UsageRow[];
  idleFloor: IdleFloorRow[];
  /** With groupBy deployment: what each deployment in scope runs on. */
  deployments?: Awaited<ReturnType<typeof currentDeployments>>;
}

/** What a usage query needs besides the stores: the sync window settings that say which days are final. */
export type UsageContext = ProducerContext & { config: { sync: Pick<ProducerConfig["sync"], "backfillDays" | "lookbackHours"> } };

/**
 * Usage rows (predictions, status counts, compute seconds, estimated cost) with idle-floor lines and
 * coverage, over local days of the query's zone; each row and each covered day says whether it is final.
 */
export async function queryUsage(ctx: UsageContext, query: z.input<typeof usageInput>): Promise<UsageReport> {
  const input = parse(usageInput, query);
  const timeZone = input.timeZone ?? (await workspaces.defaultTimeZone(ctx.db, input)) ?? "UTC";
  const q = { ...input, timeZone };
  const now = new Date();
  const [{ rows: found, days }, idleFloor, sources] = await Promise.all([
    readUsage(ctx.db, q),
    queryIdleFloor(ctx.db, q),
    coverageSources(ctx.db, { workspaceId: q.workspaceId, connectionId: q.connectionId }),
  ]);
  const finality = new Finality(sources, days, q, ctx.config.sync, now);
  const spans = sources.map((s) => coverageOf(s, q));
  const filled = q.fillZeros ? fillZeroDays(found, q.groupBy, readDays(spans, q.groupBy.includes("connection"))) : found;
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

/** The producer bound to its own connections, for a backend that runs it in-process. */
export interface Producer {
  connect(input: z.input<typeof connectInput>, options?: { idempotencyKey?: string }): Promise<connections.PublicConnection>;
  replaceToken(id: string, token: string): Promise<connections.PublicConnection>;
  disconnect(id: string): Promise<connections.PublicConnection>;
  syncNow(id: string): Promise<void>;
  getConnection(id: string): Promise<ConnectionDetail>;
  listConnections(query?: z.input<typeof listConnectionsInput>): Promise<ConnectionPage>;
  listEvents(id: string, query?: z.input<typeof listEventsInput>): Promise<EventPage>;
  queryUsage(query: z.input<typeof usageInput>): Promise<UsageReport>;
  getWorkspaceSettings(workspaceId: string): Promise<workspaces.WorkspaceSettings>;
  updateWorkspaceSettings(workspaceId: string, input: z.input<typeof workspaceSettingsInput>): Promise<workspaces.WorkspaceSettings>;
  /** Closes its database pool and Redis connection. */
  close(): Promise<void>;
}

/**
 * Opens the producer on the service's database and Redis, from the same variables the service reads
 * (loadProducerConfig: no API or support token needed). Without TOKEN_ENCRYPTION_KEYS it reads but
 * cannot store tokens: connect and replaceToken then throw.
 */
export function createProducer(config: ProducerConfig = loadProducerConfig()): Producer {
  const stores = openStores(config, 4);
  const keys = config.encryption;
  const vault = keys && new TokenVault(keys.keys, keys.currentKeyId);
  const writer = (): TokenContext => {
    if (!vault) throw new ConfigError(["TOKEN_ENCRYPTION_KEYS: storing a token needs the service's encryption keys"]);
    return { ...stores, vault };
  };
  return {
    connect: async (input, options) => connect(writer(), input, options),
    replaceToken: async (id, token) => replaceToken(writer(), id, token),
    disconnect: (id) => disconnect(stores, id),
    syncNow: (id) => syncNow(stores, id),
    getConnection: (id) => getConnection(stores, id),
    listConnections: (query) => listConnections(stores, query),
    listEvents: (id, query) => listEvents(stores, id, query),
    queryUsage: (query) => queryUsage({ ...stores, config }, query),
    getWorkspaceSettings: (id) => getWorkspaceSettings(stores, id),
    updateWorkspaceSettings: (id, input) => updateWorkspaceSettings(stores, id, input),
    close: () => stores.close(),
  };
}
