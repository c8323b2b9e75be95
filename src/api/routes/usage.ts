import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { currentDeployments } from "../../repositories/deployments.js";
import { GROUP_BY, queryIdleFloor, queryUsage, toCsv, type GroupBy } from "../../repositories/usage-query.js";

const COST_NOTE =
  "estimatedCostUsd is an estimate from this service's price book (Replicate publishes no billing API), " +
  "not an invoice; costBasis says how each row was priced and idleFloor lines are dedicated deployments' minimum instances.";

const usageQuery = z
  .object({
    workspaceId: z.string().min(1).optional(),
    connectionId: z.uuid().optional(),
    from: z.iso.date(),
    to: z.iso.date(),
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
  })
  .refine((q) => q.workspaceId || q.connectionId, { message: "give workspaceId or connectionId", path: ["workspaceId"] })
  .refine((q) => q.from <= q.to, { message: "from must not be after to", path: ["from"] });

/** Dashboard usage: rows of predictions, status counts, compute seconds and estimated cost, as JSON or CSV. */
export function usageRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/v1/usage", { schema: { querystring: usageQuery } }, async (request, reply) => {
      const q = request.query;
      const query = { ...q, groupBy: q.groupBy as GroupBy[] };
      const [rows, idleFloor] = await Promise.all([queryUsage(ctx.db, query), queryIdleFloor(ctx.db, query)]);
      if (q.format === "csv") {
        // One sheet: usage lines, then idle-floor lines, told apart by the `line` column.
        const lines = [...rows.map((r) => ({ line: "usage", ...r })), ...idleFloor];
        return reply.type("text/csv; charset=utf-8").send(toCsv(lines));
      }
      // Usage by deployment comes with what each deployment runs on.
      const deployments = q.groupBy.includes("deployment") ? await currentDeployments(ctx.db, q) : undefined;
      return { from: q.from, to: q.to, groupBy: q.groupBy, costNote: COST_NOTE, rows, idleFloor, deployments };
    });
  };
}
