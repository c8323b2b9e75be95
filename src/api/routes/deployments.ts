import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { NotFoundError } from "../../errors.js";
import { connectionDeployments } from "../../repositories/deployments.js";

const idParams = z.object({ id: z.uuid({ message: "connection id must be a UUID" }) });

/** A connection's deployments as last read from Replicate: hardware SKU, instance bounds, current release. */
export function deploymentRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get("/v1/connections/:id/deployments", { schema: { params: idParams } }, async (request) => {
      const found = await connectionDeployments(ctx.db, request.params.id);
      if (!found) throw new NotFoundError(`connection ${request.params.id} not found`);
      return found;
    });
  };
}
