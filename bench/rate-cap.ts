import * as producer from "../src/producer.js";
import { FakeProcess, startBenchService, until } from "./support.js";

export interface RateCapResult {
  configured: number;
  requests: number;
  seconds: number;
  maxInAnySecond: number;
  meanPerSecond: number;
}

/** One connection whose backfill wants far more than its cap: the fake server counts what arrives. */
export async function rateCap(fake: FakeProcess, requestsPerSecond = 20, count = 15_000): Promise<RateCapResult> {
  const token = "r8_benchRateCap";
  await fake.send({ type: "account", token, count, seed: 9, days: 30 });
  const service = await startBenchService(fake.baseUrl, { REPLICATE_REQUESTS_PER_SECOND: String(requestsPerSecond) });
  try {
    const { id } = await producer.connect(service.ctx, { workspaceId: "ratecap", token });
    await until(
      "rate-capped backfill",
      async () => (await service.ctx.db.connection.findUniqueOrThrow({ where: { id } })).lastSyncedAt !== null,
    );
  } finally {
    await service.close();
  }
  const { requests } = await fake.send<{ requests: { at: number; authorization: string }[] }>({ type: "requests" });
  const times = requests.filter((r) => r.authorization === `Bearer ${token}`).map((r) => r.at);
  // Sliding window: the most requests that arrived within any 1,000 ms.
  let maxInAnySecond = 0;
  for (let lo = 0, hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! >= 1000) lo++;
    maxInAnySecond = Math.max(maxInAnySecond, hi - lo + 1);
  }
  const seconds = (times.at(-1)! - times[0]!) / 1000;
  return { configured: requestsPerSecond, requests: times.length, seconds, maxInAnySecond, meanPerSecond: times.length / seconds };
}
