import { randomBytes } from "node:crypto";
import { VaultError } from "../../src/errors.js";
import { TokenVault } from "../../src/vault.js";

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const CONN = "3f1c3f36-5d0e-4a55-9a31-1b7c2f8d0a11";
const OTHER = "8d5e3c0b-0000-4000-8000-000000000002";
const TOKEN = "r8_abcdefghijklmnopqrstuvwxyz0123456789";

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof VaultError ? err.reason : `unexpected ${String(err)}`;
  }
  return undefined;
}

test("round trip, with a fresh IV each time and no plaintext in the ciphertext", () => {
  const vault = new TokenVault(new Map([["k1", k1]]), "k1");
  const a = vault.seal(TOKEN, CONN);
  const b = vault.seal(TOKEN, CONN);
  expect(a.ciphertext).not.toEqual(b.ciphertext);
  expect(a.ciphertext.startsWith("v1.k1.")).toBe(true);
  expect(a.ciphertext).not.toContain("r8_");
  expect(vault.open(a.ciphertext, CONN)).toBe(TOKEN);
});

test("tampered ciphertext fails authentication", () => {
  const vault = new TokenVault(new Map([["k1", k1]]), "k1");
  const parts = vault.seal(TOKEN, CONN).ciphertext.split(".");
  const body = Buffer.from(parts[4]!, "base64url");
  body[0]! ^= 1;
  parts[4] = body.toString("base64url");
  expect(reason(() => vault.open(parts.join("."), CONN))).toBe("authentication_failed");
  expect(reason(() => vault.open("v1.k1.garbage", CONN))).toBe("malformed");
});

test("a ciphertext copied to another connection fails to decrypt", () => {
  const vault = new TokenVault(new Map([["k1", k1]]), "k1");
  expect(reason(() => vault.open(vault.seal(TOKEN, CONN).ciphertext, OTHER))).toBe("authentication_failed");
});

test("an unknown key id is reported as such", () => {
  const sealed = new TokenVault(new Map([["k1", k1]]), "k1").seal(TOKEN, CONN);
  const other = new TokenVault(new Map([["k2", k2]]), "k2");
  expect(reason(() => other.open(sealed.ciphertext, CONN))).toBe("unknown_key");
});

test("rotation: old ciphertexts stay readable, new ones use the current key", () => {
  const old = new TokenVault(new Map([["k1", k1]]), "k1").seal(TOKEN, CONN);
  const rotated = new TokenVault(
    new Map([
      ["k1", k1],
      ["k2", k2],
    ]),
    "k2",
  );
  expect(old.keyId).toBe("k1");
  expect(rotated.open(old.ciphertext, CONN)).toBe(TOKEN);
  const fresh = rotated.seal(TOKEN, CONN);
  expect(fresh.keyId).toBe("k2");
});
