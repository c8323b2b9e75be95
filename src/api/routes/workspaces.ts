import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as producer from "../../producer.js";
import { op } from "../operations.js";
import { WRITE_ERRORS, responses, workspaceSettings } from "../schemas.js";

const params = z.object({ workspaceId: producer.workspaceId });

/** A workspace's settings: its default time zone for usage. A workspace exists as soon as it is named. */
export const workspaceRoutes = (ctx: AppContext) => [
  op({
    route: "GET /v1/workspaces/:workspaceId/settings",
    operationId: "getWorkspaceSettings",
    summary: "The workspace's settings (the defaults when it never set any)",
    params,
    response: responses({ 200: workspaceSettings.describe("the settings") }, [400, 401]),
    handler: (r) => producer.getWorkspaceSettings(ctx, r.params.workspaceId),
  }),
  op({
    route: "PUT /v1/workspaces/:workspaceId/settings",
    operationId: "updateWorkspaceSettings",
    summary: "Set the workspace's settings: the time zone its usage is read in when a query names none",
    params,
    body: producer.workspaceSettingsInput.meta({ examples: [{ timeZone: "America/Los_Angeles" }] }),
    response: responses({ 200: workspaceSettings.describe("the settings as stored") }, WRITE_ERRORS, {
      400: "bad input, e.g. an unknown time zone (`validation_failed`, naming `timeZone`)",
    }),
    handler: (r) => producer.updateWorkspaceSettings(ctx, r.params.workspaceId, r.body),
  }),
];
