import { readFileSync } from "node:fs";
import { TERMINAL_STATUSES, sqlList, statusRank } from "../../src/domain/prediction-status.js";

test("a prediction's status only ranks forward, unknown statuses between processing and terminal", () => {
  expect(statusRank("starting")).toBeLessThan(statusRank("processing"));
  expect(statusRank("processing")).toBeLessThan(statusRank("queued-by-a-future-api"));
  for (const s of TERMINAL_STATUSES) expect(statusRank("queued-by-a-future-api")).toBeLessThan(statusRank(s));
});

test("the partial index of unfinished predictions filters on the same terminal set", () => {
  const sql = readFileSync("prisma/migrations/20261125223627_init/migration.sql", "utf8");
  expect(sql).toContain(`WHERE "status" NOT IN (${sqlList(TERMINAL_STATUSES)})`);
});
