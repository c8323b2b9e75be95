import { randomBytes } from "node:crypto";
import { createConnection, storedToken, reencryptTokens } from "../../src/repositories/connections.js";
import { TokenVault } from "../../src/vault.js";
import { createTestDatabase, type TestDatabase } from "../../dev/postgres.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase(2);
});
afterAll(() => t.drop());

test("the rotation command re-seals stored tokens under the current key", async () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const before = new TokenVault(new Map([["k1", k1]]), "k1");
  const a = await createConnection(t.db, before, "ws-rot", "r8_tokenA1234567890");
  const b = await createConnection(t.db, before, "ws-rot", "r8_tokenB1234567890");

  const after = new TokenVault(
    new Map([
      ["k1", k1],
      ["k2", k2],
    ]),
    "k2",
  );
  expect(await reencryptTokens(t.db, after)).toEqual({ rotated: 2, skipped: 0 });
  expect(await reencryptTokens(t.db, after)).toEqual({ rotated: 0, skipped: 0 });

  const rows = await t.db.connection.findMany({ where: { workspaceId: "ws-rot" } });
  expect(rows.map((r) => r.tokenKeyId)).toEqual(["k2", "k2"]);
  // Only the new key is needed now.
  const onlyNew = new TokenVault(new Map([["k2", k2]]), "k2");
  expect((await storedToken(t.db, onlyNew, a.id))?.token).toBe("r8_tokenA1234567890");
  expect((await storedToken(t.db, onlyNew, b.id))?.token).toBe("r8_tokenB1234567890");
});
