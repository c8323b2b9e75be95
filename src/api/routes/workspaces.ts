import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { WRITE_ERRORS, noQuery, responses, workspaceSettings } from "../schemas.js";

const params = z.object({ workspaceId: producer.workspaceId });
const tags = ["workspaces"];

/** A workspace's settings: its default time zone for usage. A workspace exists as soon as it is named. */
export function workspaceRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      "/v1/workspaces/:workspaceId/settings",
      {
        schema: {
          operationId: "getWorkspaceSettings",
          summary: "The workspace's settings (the defaults when it never set any)",
          tags,
          params,
          querystring: noQuery,
          response: responses({ 200: workspaceSettings.describe("the settings") }, [400, 401]),
        },
      },
      async (request) => producer.getWorkspaceSettings(ctx, request.params.workspaceId),
    );

    app.put(
      "/v1/workspaces/:workspaceId/settings",
      {
        schema: {
          operationId: "updateWorkspaceSettings",
          summary: "Set the workspace's settings: the time zone its usage is read in when a query names none",
          tags,
          params,
          querystring: noQuery,
          body: producer.workspaceSettingsInput.meta({ examples: [{ timeZone: "America/Los_Angeles" }] }),
          response: responses({ 200: workspaceSettings.describe("the settings as stored") }, WRITE_ERRORS, {
            400: "bad input, e.g. an unknown time zone (`validation_failed`, naming `timeZone`)",
          }),
        },
      },
      async (request) => producer.updateWorkspaceSettings(ctx, request.params.workspaceId, request.body),
    );
  };
}
