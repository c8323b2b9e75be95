import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { deploymentList, noQuery, responses } from "../schemas.js";

const idParams = z.object({ id: producer.connectionId });

/** A connection's deployments as last read from Replicate: hardware SKU, instance bounds, current release. */
export function deploymentRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/v1/connections/:id/deployments",
      {
        schema: {
          operationId: "listConnectionDeployments",
          summary: "The connection's deployments: hardware SKU, min/max instances, current release",
          tags: ["connections"],
          params: idParams,
          querystring: noQuery,
          response: responses({ 200: deploymentList.describe("the deployments as last read") }, [400, 401, 404]),
        },
      },
      async (request) => producer.listDeployments(ctx, request.params.id),
    );
  };
}
