import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { GROUP_BY, queryUsage, type GroupBy } from "../../repositories/usage-query.js";
import { toCsv } from "../csv.js";

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

/** Dashboard usage: rows of predictions, status counts and compute seconds, as JSON or CSV. */
export function usageRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/v1/usage", { schema: { querystring: usageQuery } }, async (request, reply) => {
      const q = request.query;
      const rows = await queryUsage(ctx.db, { ...q, groupBy: q.groupBy as GroupBy[] });
      if (q.format === "csv") {
        return reply
          .type("text/csv; charset=utf-8")
          .header("content-disposition", `attachment; filename="usage-${q.from}-${q.to}.csv"`)
          .send(toCsv(rows));
      }
      return { from: q.from, to: q.to, groupBy: q.groupBy, rows };
    });
  };
}
