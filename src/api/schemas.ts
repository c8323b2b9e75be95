import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { AccountType, ConnectionStatus, EventKind, EventLevel } from "../generated/prisma/enums.js";
import { healthSchema } from "../domain/health.js";
import { coverageSchema } from "../domain/coverage.js";
import { decimalUsd } from "../pricing/schemas.js";
import { DIMENSION_FIELD, GROUP_BY, ROW_ORDER, ROW_STATE, answered, type MeasureType } from "../domain/usage-measures.js";

// Fastify serializes every answer through these schemas and @fastify/swagger turns them into /openapi.json: the two cannot drift.

/** Every error the API answers, whatever produced it (a route, validation, auth, fastify itself, an unknown route). */
export const errorBody = z
  .object({
    error: z.string().describe("machine-readable reason, e.g. validation_failed, not_found, unauthorized"),
    message: z.string().describe("one sentence for a person"),
    issues: z.array(z.string()).optional().describe("validation_failed: one `field: problem` line per bad input"),
    requestId: z.string().describe("the x-request-id of this request, also in the service's log lines"),
  })
  .meta({
    examples: [
      {
        error: "validation_failed",
        message: "invalid querystring",
        issues: ["limit: Too big: expected number to be <=200"],
        requestId: "5c0f9b9e-0f5e-4a53-9a55-8d2d2b1f6f1c",
      },
    ],
  });
export function errorReply(request: FastifyRequest, error: string, message: string, issues?: string[]): z.output<typeof errorBody> {
  return { error, message, ...(issues ? { issues } : {}), requestId: request.id };
}

const ERROR_MEANING = {
  400: "bad input: a body, path or query parameter fails validation, an unknown query parameter, or a body that is not valid JSON (`validation_failed`, `invalid_body`)",
  401: "no credential, or a wrong one (`unauthorized`)",
  403: "the support token on a route it may not use (`forbidden`), or a write from another site's page (`forbidden_origin`)",
  404: "no connection with this id (`not_found`)",
  409: "the connection's state does not allow this, or an Idempotency-Key was reused for another token (`conflict`)",
  413: "a body larger than 64 KiB (`payload_too_large`)",
  415: "a body that is not application/json (`unsupported_media_type`)",
  503: "the job queue (Redis) does not answer; nothing was queued, retry later (`unavailable`)",
  504: "the query ran longer than USAGE_QUERY_TIMEOUT_MS and was stopped; ask for a shorter range or fewer groupBy columns (`query_timeout`)",
} as const;
export type ErrorStatus = keyof typeof ERROR_MEANING;

/** What every write answers besides its own outcome. */
export const WRITE_ERRORS: ErrorStatus[] = [400, 401, 403, 413, 415];

/** A route's successes plus the error statuses it answers (`notes` where the generic meaning is not enough) and 5xx. */
export function responses<S extends Record<number, unknown>>(
  ok: S,
  statuses: ErrorStatus[],
  notes: Partial<Record<ErrorStatus, string>> = {},
): S & Partial<Record<ErrorStatus | "default", typeof errorBody>> {
  const errors = Object.fromEntries(statuses.map((s) => [s, errorBody.describe(notes[s] ?? ERROR_MEANING[s])]));
  return {
    ...ok,
    ...errors,
    default: errorBody.describe("an unexpected failure (500 `internal`; see the service logs under the requestId)"),
  };
}

const when = z.date();
const uuid = "3f1c8c52-4b0e-4f8a-9d59-0c7c1f1e2a10";
const at = "2026-03-10T12:00:00.000Z";

export const publicConnection = z.object({
  id: z.uuid(),
  workspaceId: z.string(),
  status: z.enum(ConnectionStatus),
  accountUsername: z.string().nullable(),
  accountType: z.enum(AccountType).nullable(),
  verifiedAt: when.nullable(),
  lastSyncStartedAt: when.nullable(),
  lastSyncedAt: when.nullable().describe("start time of the last sync run that finished"),
  highWaterMark: when.nullable().describe("created_at of the newest prediction a finished run has seen"),
  deploymentsCheckedAt: when.nullable(),
  createdAt: when,
  updatedAt: when,
});

// A new connection: every field null but these.
const connectionExample: Record<string, unknown> = {
  ...Object.fromEntries(Object.keys(publicConnection.shape).map((k) => [k, null])),
  id: uuid,
  workspaceId: "ws-1",
  status: "pending",
  createdAt: at,
  updatedAt: at,
};
export const acceptedConnection = publicConnection.meta({ examples: [connectionExample] });

export const connectionView = publicConnection.omit({ deploymentsCheckedAt: true }).extend({
  currentRun: z
    .object({ runId: z.string(), startedAt: z.string(), pagesDone: z.number().int(), predictionsSeen: z.number().int() })
    .nullable()
    .describe("the run in progress, or null between runs"),
  health: healthSchema,
});

const viewExample: Record<string, unknown> = {
  ...connectionExample,
  status: "connected",
  accountUsername: "acme",
  accountType: "organization",
  verifiedAt: at,
  lastSyncStartedAt: at,
  lastSyncedAt: at,
  highWaterMark: at,
  currentRun: null,
  health: {
    state: "healthy",
    since: at,
    message: "Syncing normally; the last completed run started at 2026-03-10 12:00 UTC.",
    action: null,
    actionBy: null,
    lastError: null,
    warnings: [],
  },
};
const { deploymentsCheckedAt: _d, ...viewFields } = viewExample;

export const connectionDetail = connectionView
  .extend({ nextSyncAt: when.nullable().describe("the next scheduled sync while connected") })
  .meta({ examples: [{ ...viewFields, nextSyncAt: "2026-03-10T13:00:00.000Z" }] });

export const connectionPage = z
  .object({ connections: z.array(connectionView), nextCursor: z.string().nullable().describe("pass as `cursor` for the next page") })
  .meta({ examples: [{ connections: [viewFields], nextCursor: null }] });

const eventExample = {
  id: "42",
  occurredAt: at,
  kind: "verified",
  level: "info",
  message: 'token verified for Replicate organization "acme"',
  httpStatus: null,
  retryAfterSeconds: null,
  jobId: `verify-${uuid}-1`,
  detail: { accountType: "organization", username: "acme" },
};

export const eventPage = z
  .object({
    events: z.array(
      z.object({
        id: z.string(),
        occurredAt: z.iso.datetime(),
        kind: z.enum(EventKind),
        level: z.enum(EventLevel),
        message: z.string(),
        httpStatus: z.number().int().nullable(),
        retryAfterSeconds: z.number().int().nullable(),
        jobId: z.string().nullable(),
        detail: z.unknown(),
      }),
    ),
    nextCursor: z.string().nullable(),
  })
  .meta({ examples: [{ events: [eventExample], nextCursor: null }] });

export const syncQueued = z.object({ status: z.literal("queued") });

const deployment = z.object({
  name: z.string(),
  releaseNumber: z.number().int(),
  model: z.string(),
  version: z.string(),
  hardware: z.string(),
  minInstances: z.number().int(),
  maxInstances: z.number().int(),
  effectiveFrom: z.iso.date(),
  lastSeenOn: z.iso.date(),
});

export const deploymentList = z.object({
  checkedAt: when.nullable().describe("when GET /v1/deployments was last read for this connection"),
  deployments: z.array(deployment),
});

const dimension = z.string().nullable().optional();

const MEASURE_SCHEMA: Record<MeasureType, z.ZodType> = {
  count: z.number().int(),
  amount: z.number(),
  usd: decimalUsd,
  label: z.string().nullable(),
};
const dimensions = Object.fromEntries(GROUP_BY.map((g) => [DIMENSION_FIELD[g], dimension]));
// From the measures table: the measures status-grouped rows carry are in every row, the others optional.
const usageRow = z.looseObject({
  ...dimensions,
  ...Object.fromEntries(
    answered(false).map((m) => {
      const type = MEASURE_SCHEMA[m.type];
      const schema = type.describe([m.about, type.description].filter(Boolean).join("; "));
      return [m.name, answered(true).includes(m) ? schema : schema.optional()];
    }),
  ),
  final: z.boolean().describe(ROW_STATE.final),
  refreshedAt: z.iso.datetime().nullable().describe(ROW_STATE.refreshedAt),
});

export const usageReport = z
  .looseObject({
    from: z.iso.date(),
    to: z.iso.date(),
    timeZone: z.string().describe("the IANA zone the days are in: the query's timeZone, else the workspace's default, else UTC"),
    groupBy: z.array(z.enum(GROUP_BY)),
    costNote: z.string(),
    deployments: z
      .array(deployment.extend({ connectionId: z.uuid() }))
      .optional()
      .describe("with groupBy deployment: what each deployment in scope runs on (its latest release)"),
    coverage: z.array(coverageSchema),
    rows: z.array(usageRow).describe(`usage rows, ${ROW_ORDER}`),
    idleFloor: z.array(
      z.looseObject({
        line: z.literal("idle_floor"),
        date: dimension,
        connectionId: dimension,
        model: dimension,
        deployment: dimension,
        instanceSeconds: z.number(),
        estimatedCostUsd: decimalUsd,
        costBasis: z.string(),
      }),
    ),
  })
  .meta({
    examples: [
      {
        from: "2026-03-01",
        to: "2026-03-02",
        timeZone: "America/Los_Angeles",
        groupBy: ["date", "model"],
        costNote: "estimatedCostUsd is an estimate from this service's price book …",
        coverage: [
          {
            connectionId: uuid,
            from: "2026-03-01",
            to: "2026-03-02",
            complete: true,
            lastSyncedAt: at,
            finalThrough: "2026-03-01",
            utcOnly: [],
            days: [
              { date: "2026-03-01", final: true, refreshedAt: "2026-03-02T07:59:58.120Z" },
              { date: "2026-03-02", final: false, refreshedAt: "2026-03-10T11:58:01.004Z" },
            ],
          },
        ],
        rows: [
          {
            date: "2026-03-01",
            model: "black-forest-labs/flux-schnell",
            predictions: 12,
            succeeded: 11,
            failed: 1,
            canceled: 0,
            aborted: 0,
            inProgress: 0,
            other: 0,
            computeSeconds: 14.5,
            meteredPredictions: 12,
            billableSeconds: 14.5,
            inputTokens: 0,
            outputTokens: 0,
            estimatedCostUsd: "0.036",
            costBasis: "outputs",
            hardwareCostUsd: "0",
            tokenCostUsd: "0",
            outputCostUsd: "0.036",
            pricedPredictions: 12,
            pricedShare: "1",
            final: true,
            refreshedAt: "2026-03-02T07:59:58.120Z",
          },
        ],
        idleFloor: [],
      },
    ],
  });

// erasure (src/lifecycle/erase.ts)
export const erasureView = z
  .object({
    connectionId: z.uuid(),
    workspaceId: z.string(),
    state: z.enum(["not_requested", "in_progress", "erased"]),
    requestedAt: when.nullable(),
    erasedAt: when.nullable().describe("when nothing of the history was left; the connection stays, disconnected, with its event log"),
    deleted: z
      .object({ ledgerRows: z.number().int(), usageRows: z.number().int(), deploymentReleases: z.number().int() })
      .nullable()
      .describe("rows deleted so far per table (all of them once erased; the history_erased event has the same counts)"),
  })
  .meta({
    examples: [
      {
        connectionId: uuid,
        workspaceId: "ws-1",
        state: "in_progress",
        requestedAt: at,
        erasedAt: null,
        deleted: { ledgerRows: 5000, usageRows: 0, deploymentReleases: 0 },
      },
    ],
  });

export const workspaceErasure = z.object({
  workspaceId: z.string(),
  erasures: z.array(erasureView).describe("one per disconnected connection of the workspace"),
  skipped: z
    .array(z.object({ connectionId: z.uuid(), status: z.enum(ConnectionStatus) }))
    .describe("connections not disconnected, left as they are (ask with disconnect: true to include them)"),
});

export const workspaceSettings = z
  .object({
    workspaceId: z.string(),
    timeZone: z.string().nullable().describe("IANA zone usage queries of the workspace use when they name none; null is UTC"),
    updatedAt: when.nullable().describe("when the settings were last set; null when never (the defaults)"),
  })
  .meta({ examples: [{ workspaceId: "ws-1", timeZone: "America/Los_Angeles", updatedAt: at }] });
