import { isoDay } from "../../domain/calendar.js";
import { workspaceId } from "../../producer.js";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { coverageOf, daysOf, type Coverage } from "../../coverage.js";
import { coverageSources } from "../../repositories/connection-views.js";
import { currentDeployments } from "../../repositories/deployments.js";
import { GROUP_BY, fillZeroDays, queryIdleFloor, queryUsage, type GroupBy } from "../../repositories/usage-query.js";
import { toCsv } from "../csv.js";

const COST_NOTE =
  "estimatedCostUsd is an estimate from this service's price book (Replicate publishes no billing API), " +
  "not an invoice; costBasis says how each row was priced and idleFloor lines are dedicated deployments' minimum instances.";

const usageQuery = z
  .object({
    workspaceId: workspaceId.optional(),
    connectionId: z.uuid().optional(),
    from: isoDay,
    to: isoDay,
    groupBy: z
      .string()
      .default("date,model,deployment")
      .transform((s) =>
        s
          .split(",")
          .map((g) => g.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.enum(GROUP_BY)).refine((a) => new Set(a).size === a.length, "groupBy lists a column twice")),
    format: z.enum(["json", "csv"]).default("json"),
    /** Zero rows for days read but without usage (never for days not read yet). */
    fillZeros: z.enum(["true", "false"]).default("false"),
  })
  .strict()
  .refine((q) => q.workspaceId || q.connectionId, { message: "give workspaceId or connectionId", path: ["workspaceId"] })
  .refine((q) => q.from <= q.to, { message: "from must not be after to", path: ["from"] })
  .refine((q) => q.fillZeros === "false" || q.groupBy.includes("date"), {
    message: "fillZeros needs date in groupBy",
    path: ["fillZeros"],
  });

/** Days every connection in scope has read (a day one of them has not read is unknown, not zero). */
function zeroDays(coverage: Coverage[], byConnection: boolean): Map<string, string[]> {
  if (byConnection) return new Map(coverage.map((c) => [c.connectionId, daysOf(c)]));
  const sets = coverage.map((c) => new Set(daysOf(c)));
  const shared = coverage.length ? daysOf(coverage[0]!).filter((d) => sets.every((s) => s.has(d))) : [];
  return new Map([["", shared]]);
}

/**
 * Dashboard usage: rows of predictions, status counts, compute seconds and estimated cost, as JSON or CSV, with the
 * coverage of each connection in scope (JSON `coverage`; CSV the `X-Coverage` header, same JSON).
 */
export function usageRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/v1/usage", { schema: { querystring: usageQuery } }, async (request, reply) => {
      const q = request.query;
      const groupBy = q.groupBy as GroupBy[];
      const query = { ...q, groupBy };
      const [found, idleFloor, sources] = await Promise.all([
        queryUsage(ctx.db, query),
        queryIdleFloor(ctx.db, query),
        coverageSources(ctx.db, { workspaceId: q.workspaceId, connectionId: q.connectionId }),
      ]);
      const coverage = sources.map((s) => coverageOf(s, q));
      const rows = q.fillZeros === "true" ? fillZeroDays(found, groupBy, zeroDays(coverage, groupBy.includes("connection"))) : found;
      if (q.format === "csv") {
        // One sheet: usage lines, then idle-floor lines, told apart by the `line` column.
        const lines = [...rows.map((r) => ({ line: "usage", ...r })), ...idleFloor];
        return reply
          .type("text/csv; charset=utf-8")
          .header("content-disposition", `attachment; filename="usage-${q.from}-${q.to}.csv"`)
          .header("x-coverage", JSON.stringify(coverage))
          .send(toCsv(lines));
      }
      // Usage by deployment comes with what each deployment runs on.
      const deployments = q.groupBy.includes("deployment") ? await currentDeployments(ctx.db, q) : undefined;
      return { from: q.from, to: q.to, groupBy: q.groupBy, costNote: COST_NOTE, coverage, rows, idleFloor, deployments };
    });
  };
}
