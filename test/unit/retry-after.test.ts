import { DEFAULT_RETRY_AFTER_SECONDS, parseRetryAfter } from "../../src/replicate/retry-after.js";
import { recordScenario } from "../support/fault-summary.js";

// Literal throttle answers: the header forms of RFC 9110, and the bodies Replicate documents or has sent.
const now = Date.parse("2026-06-01T12:00:00Z");

test.each([
  { form: "header seconds", header: "7", body: undefined, seconds: 7, source: "header" },
  { form: "header HTTP date", header: "Mon, 01 Jun 2026 12:00:42 GMT", body: undefined, seconds: 42, source: "header" },
  {
    form: "documented 'resets in ~30s'",
    header: undefined,
    body: '{"detail":"Request was throttled. Your rate limit resets in ~30s."}',
    seconds: 30,
    source: "body",
  },
  {
    form: "retry_after field (wins over the text)",
    header: undefined,
    body: '{"detail":"Request was throttled. Expected available in 5 seconds.","status":429,"retry_after":5}',
    seconds: 5,
    source: "body",
  },
  {
    form: "retry_after field alone",
    header: undefined,
    body: '{"detail":"Request was throttled.","status":429,"retry_after":12}',
    seconds: 12,
    source: "body",
  },
  {
    form: "'Expected available in 1 second'",
    header: undefined,
    body: '{"title":"Too Many Requests","detail":"Request was throttled. Expected available in 1 second.","status":429}',
    seconds: 1,
    source: "body",
  },
  { form: "'available in N seconds'", header: undefined, body: '{"detail":"available in 9 seconds"}', seconds: 9, source: "body" },
  { form: "'resets in 2m'", header: undefined, body: '{"detail":"Your rate limit resets in ~2m."}', seconds: 120, source: "body" },
  {
    form: "plain-text body",
    header: undefined,
    body: "Request was throttled. Your rate limit resets in ~15s.",
    seconds: 15,
    source: "body",
  },
  { form: "header wins over the body", header: "3", body: '{"retry_after":60}', seconds: 3, source: "header" },
  { form: "nothing usable", header: "soon", body: '{"detail":"slow down"}', seconds: DEFAULT_RETRY_AFTER_SECONDS, source: "default" },
  { form: "negative or absurd values are clamped", header: undefined, body: '{"retry_after":-5}', seconds: 1, source: "body" },
  { form: "an hour at most", header: "999999", body: undefined, seconds: 3600, source: "header" },
])("$form", ({ header, body, seconds, source }) => {
  expect(parseRetryAfter(header, body, now)).toEqual({ seconds, source });
});

afterAll(() =>
  recordScenario({
    scenario: "#14 Replicate throttle messages",
    injected: "header seconds / HTTP date, retry_after field, 'resets in ~30s', 'available in N seconds', plain text",
    outcome: "each literal body parsed to its wait (unit); 'resets in ~30s' waits 30 s, not the 10 s default",
  }),
);
