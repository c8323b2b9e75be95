import { predictionSchema } from "../../src/replicate/schemas.js";

const base = { id: "p1", status: "succeeded", created_at: "2026-06-01T10:00:00Z" };

test("token metrics, source and data_removed are kept; inputs, outputs, logs and unknown metrics are not", () => {
  const parsed = predictionSchema.parse({
    ...base,
    source: "web",
    data_removed: true,
    input: { prompt: "secret" },
    output: "secret",
    logs: "secret",
    metrics: { predict_time: 1.5, total_time: 2, input_token_count: 12, output_token_count: 340, tokens_per_second: 80.2 },
  });
  expect(parsed).toMatchObject({ source: "web", data_removed: true });
  expect(parsed.metrics).toEqual({ predictTime: 1.5, totalTime: 2, inputTokens: 12, outputTokens: 340 });
  expect(JSON.stringify(parsed)).not.toContain("secret");
});

test("a token count of an unexpected shape is dropped instead of failing the page", () => {
  const parsed = predictionSchema.parse({ ...base, metrics: { predict_time: 1, input_token_count: 1.5, output_token_count: "many" } });
  expect(parsed.metrics).toEqual({ predictTime: 1, totalTime: null, inputTokens: null, outputTokens: null });
  expect(predictionSchema.parse(base)).toMatchObject({ data_removed: null, metrics: { inputTokens: null } });
});
