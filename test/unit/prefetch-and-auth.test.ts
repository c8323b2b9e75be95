import { presentedToken, tokenMatches } from "../../src/api/security.js";
import type { PredictionPage } from "../../src/replicate/schemas.js";
import { newCheckpoint } from "../../src/domain/checkpoint.js";
import { PagePrefetcher } from "../../src/sync/prefetch.js";

const run = newCheckpoint({
  now: new Date("2026-06-01T00:00:00Z"),
  highWaterMark: null,
  oldestUnfinished: null,
  backfillDays: 1,
  lookbackHours: 1,
});
const first = Object.values(run.windows)[0]!;
const at = (pagesDone: number, nextUrl: string | null) => ({ ...first, pagesDone, nextUrl });
const page = (next: string | null): PredictionPage => ({ next, previous: null, results: [], rejected: [] });

describe("PagePrefetcher", () => {
  test("a page fetched ahead is taken once, and only for exactly the same connection, token, run, window and link", async () => {
    const prefetcher = new PagePrefetcher(8);
    const after1 = at(1, "https://api/p?c=2");
    let fetches = 0;
    prefetcher.ahead("conn|tokenA", after1, async () => (fetches++, page("https://api/p?c=3")));
    prefetcher.ahead("conn|tokenA", after1, async () => (fetches++, page(null))); // already under way
    expect(fetches).toBe(1);
    expect(prefetcher.take("conn|tokenB", after1)).toBeUndefined();
    expect(prefetcher.take("conn|tokenA", at(1, "https://api/p?c=other"))).toBeUndefined();
    await expect(prefetcher.take("conn|tokenA", after1)).resolves.toMatchObject({ next: "https://api/p?c=3" });
    expect(prefetcher.take("conn|tokenA", after1)).toBeUndefined();
  });

  test("nothing is fetched after the last page; old entries are dropped past capacity; a failure is not unhandled", async () => {
    const prefetcher = new PagePrefetcher(2);
    let fetches = 0;
    prefetcher.ahead("c", at(0, null), async () => (fetches++, page(null)));
    expect(fetches).toBe(0);
    for (const n of [1, 2, 3]) prefetcher.ahead("c", at(n, `u${n}`), () => Promise.reject(new Error(`boom ${n}`)));
    expect(prefetcher.take("c", at(1, "u1"))).toBeUndefined();
    await expect(prefetcher.take("c", at(3, "u3"))).rejects.toThrow("boom 3");
  });
});

describe("API token from the Authorization header", () => {
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  test.each([
    ["Bearer s3cret-token", "s3cret-token"],
    [basic("support", "s3cret:token"), "s3cret:token"],
    [basic("", "s3cret-token"), "s3cret-token"],
    ["Digest abc", null],
    ["Bearer", null],
    [undefined, null],
  ])("%s → %s", (header, token) => {
    expect(presentedToken(header)).toBe(token);
  });
  test("only the exact token matches", () => {
    expect(tokenMatches("Bearer s3cret-token", "s3cret-token")).toBe(true);
    expect(tokenMatches(basic("x", "s3cret-token"), "s3cret-token")).toBe(true);
    expect(tokenMatches("Bearer s3cret-toke", "s3cret-token")).toBe(false);
    expect(tokenMatches(undefined, "s3cret-token")).toBe(false);
  });
});
