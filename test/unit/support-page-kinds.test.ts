import { readFileSync } from "node:fs";
import { EventKind } from "../../src/generated/prisma/enums.js";

// The support page is plain browser JS with no build step, so its event-kind filter is a list of its
// own; this keeps it equal to the event log's kinds (a new kind must be findable by support).
test("the support page's event-kind filter offers every kind the event log has", () => {
  const source = readFileSync(new URL("../../src/api/ui/app.js", import.meta.url), "utf8");
  const list = /const EVENT_KINDS = \[([^\]]*)\]/.exec(source)?.[1];
  expect(list).toBeDefined();
  const offered = [...list!.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
  expect([...offered].sort()).toEqual(Object.values(EventKind).sort());
});
