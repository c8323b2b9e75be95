import { FakeReplicate } from "../dev/fake-replicate.js";
import { generatePredictions } from "../dev/predictions.js";

// The fake Replicate in its own process, so serving pages does not share an event loop with the
// service being measured. Driven over IPC by bench/support.ts.

export type FakeCommand =
  /** `busyDay`: that share of the predictions on one day (10 days back), the rest over `days`. */
  | { type: "account"; token: string; count: number; seed: number; days: number; busyDay?: number }
  | { type: "accounts"; tokenPrefix: string; accounts: number; perAccount: number }
  /** `count` new predictions, created in the last minute, for each account `accounts` made (`round` keeps their ids apart). */
  | { type: "grow"; tokenPrefix: string; accounts: number; count: number; round: number }
  | { type: "latency"; ms: number }
  | { type: "requests" };

const fake = new FakeReplicate();
const baseUrl = await fake.start();
let accounts = 0;
process.send!({ type: "ready", baseUrl });

process.on("message", (command: FakeCommand & { seq: number }) => {
  const reply = (body: object = {}) => process.send!({ seq: command.seq, ...body });
  switch (command.type) {
    case "account": {
      const busy = Math.round(command.count * (command.busyDay ?? 0));
      const end = new Date(Date.now() - 10 * 86_400_000);
      const predictions = [
        ...generatePredictions({ ...command, count: command.count - busy }),
        ...generatePredictions({ count: busy, seed: command.seed + 1, days: 1, end, idPrefix: "busy" }),
      ];
      // One account per token: connections of one account in a workspace would be duplicates.
      fake.addAccount(command.token, { type: "organization", username: `bench-org-${(accounts += 1)}` }, predictions);
      return reply();
    }
    case "accounts":
      for (let i = 0; i < command.accounts; i++) {
        const predictions = generatePredictions({ count: command.perAccount, days: 0.5, seed: i, idPrefix: `a${i}-` });
        fake.addAccount(`${command.tokenPrefix}${i}`, { type: "user", username: `bench${i}` }, predictions);
      }
      return reply();
    case "grow":
      for (let i = 0; i < command.accounts; i++) {
        const predictions = generatePredictions({ count: command.count, days: 1 / 1440, seed: i, idPrefix: `a${i}-r${command.round}-` });
        fake.upsertPredictions(`${command.tokenPrefix}${i}`, predictions);
      }
      return reply();
    case "latency":
      fake.pageLatencyMs = command.ms;
      return reply();
    case "requests":
      return reply({ requests: fake.requests.map((r) => ({ at: r.at, authorization: r.authorization, status: r.status })) });
  }
});
process.on("disconnect", () => void fake.close().then(() => process.exit(0)));
