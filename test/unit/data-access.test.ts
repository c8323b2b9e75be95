import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

// Repositories own all data access: a Prisma model call or raw SQL anywhere else in src/ or jobs/ fails here.
const ALLOWED = [path.join("src", "repositories"), path.join("src", "db"), path.join("src", "generated")];
const DATA_ACCESS =
  /\b(?:db|tx)\s*\.\s*(?:\$(?:queryRaw|executeRaw|transaction)\w*|\w+\s*\.\s*(?:find\w*|create\w*|update\w*|upsert|delete\w*|count|groupBy|aggregate))\s*\(/g;

const calls = (text: string) => text.match(DATA_ACCESS) ?? [];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return ALLOWED.includes(p) ? [] : sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

test("no Prisma or raw SQL call outside src/repositories and src/db", () => {
  const found = [...sourceFiles("src"), ...sourceFiles("jobs")].flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .flatMap((line, i) => calls(line).map((call) => `${file}:${i + 1} ${call}`)),
  );
  expect(found).toEqual([]);
});

test("the check recognises the calls it forbids", () => {
  expect(calls("await ctx.db.connection.findMany({})")).toHaveLength(1);
  expect(calls('await tx.$queryRawUnsafe("SELECT 1")')).toHaveLength(1);
  expect(calls("db.$transaction(async (tx) => tx.usageBucket.upsert({}))")).toHaveLength(2);
  expect(calls('await ctx.queues.enqueue("tick", { connectionId })')).toHaveLength(0);
});
