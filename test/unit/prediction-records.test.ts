import { RECORD_LIMITS, splitRecords } from "../../src/replicate/schemas.js";

const ok = { id: "p1", status: "succeeded", created_at: "2026-06-01T10:00:00Z", model: "acme/m", metrics: { predict_time: 2 } };
const reasonFor = (record: object) => splitRecords([record]).rejected[0]?.reason;

test("each record is checked on its own: good ones kept, bad ones named with a reason", () => {
  const { results, rejected } = splitRecords([ok, { ...ok, id: 42 }, "not an object", { ...ok, id: "p2" }]);
  expect(results.map((p) => p.id)).toEqual(["p1", "p2"]);
  expect(rejected).toEqual([
    { id: "42", reason: expect.stringMatching(/^id: /) },
    { id: "(no id)", reason: expect.any(String) },
  ]);
});

test("NUL bytes are stripped from every text; over-long text is cut, an over-long id rejected", () => {
  const [p] = splitRecords([
    { ...ok, id: "p\u00001", model: "a\u0000/b", version: "v\u0000", deployment: "d".repeat(300), source: "\u0000" },
  ]).results;
  expect(p).toMatchObject({ id: "p1", model: "a/b", version: "v", source: "" });
  expect(p!.deployment).toHaveLength(RECORD_LIMITS.textChars);
  expect(splitRecords([{ ...ok, id: "i".repeat(RECORD_LIMITS.idChars) }]).results).toHaveLength(1);
  const long = splitRecords([{ ...ok, id: "i".repeat(10_000) }]).rejected[0]!;
  expect(long.id).toBe(`${"i".repeat(RECORD_LIMITS.idChars)}…`);
  expect(long.reason).toMatch(/^id: /);
  // A cut never leaves half of a surrogate pair (Postgres would get an invalid character).
  const emoji = splitRecords([{ ...ok, model: `${"m".repeat(255)}😀` }]).results[0]!;
  expect(emoji.model).toBe("m".repeat(255));
});

test("times must be finite, non-negative and at most 30 days; dates ISO between 2000 and 2099; status non-empty", () => {
  expect(splitRecords([{ ...ok, metrics: { predict_time: RECORD_LIMITS.maxSeconds, total_time: 0 } }]).results).toHaveLength(1);
  expect(reasonFor({ ...ok, metrics: { predict_time: RECORD_LIMITS.maxSeconds + 1 } })).toMatch(/metrics\.predict_time/);
  expect(reasonFor({ ...ok, metrics: { total_time: 1e15 } })).toMatch(/metrics\.total_time/);
  expect(reasonFor({ ...ok, metrics: { predict_time: -1 } })).toMatch(/metrics\.predict_time/);
  expect(reasonFor({ ...ok, created_at: "yesterday" })).toMatch(/created_at/);
  expect(reasonFor({ ...ok, created_at: "0000-01-01T00:00:00Z" })).toMatch(/created_at: outside the years 2000 to 2099/);
  expect(reasonFor({ ...ok, completed_at: "+275760-09-13T00:00:00Z" })).toMatch(/completed_at/);
  expect(reasonFor({ ...ok, status: "" })).toMatch(/^status: /);
  expect(reasonFor({ ...ok, status: " \u0000 " })).toMatch(/^status: /);
  // The reason never quotes the value.
  expect(reasonFor({ ...ok, model: 12345678 })).not.toContain("12345678");
});
