import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { VaultError } from "./errors.js";

// Ciphertext format: v1.<keyId>.<iv>.<tag>.<ciphertext> (base64url parts). The key id travels with
// the data so old rows stay readable after rotation; the connection id is authenticated as AAD so a
// ciphertext copied to another connection's row fails to decrypt.

const VERSION = "v1";
const ALGORITHM = "aes-256-gcm";

export class TokenVault {
  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    readonly currentKeyId: string,
  ) {
    if (!keys.has(currentKeyId)) throw new VaultError("unknown_key", `current key "${currentKeyId}" is not in the keyring`);
  }

  seal(plaintext: string, connectionId: string): { ciphertext: string; keyId: string } {
    const iv = randomBytes(12);
    const cipher = createCipheriv(ALGORITHM, this.keys.get(this.currentKeyId)!, iv);
    cipher.setAAD(Buffer.from(connectionId, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    const encoded = [iv, cipher.getAuthTag(), body].map((bytes) => bytes.toString("base64url"));
    return { ciphertext: [VERSION, this.currentKeyId, ...encoded].join("."), keyId: this.currentKeyId };
  }

  open(ciphertext: string, connectionId: string): string {
    const parts = ciphertext.split(".");
    if (parts.length !== 5 || parts[0] !== VERSION) throw new VaultError("malformed", "token ciphertext is not in the v1 format");
    const [, keyId, iv, tag, body] = parts as [string, string, string, string, string];
    const key = this.keys.get(keyId);
    if (!key) throw new VaultError("unknown_key", `token was encrypted with key "${keyId}", which is not configured`);
    const ivBytes = Buffer.from(iv, "base64url");
    const tagBytes = Buffer.from(tag, "base64url");
    if (ivBytes.length !== 12 || tagBytes.length !== 16) throw new VaultError("malformed", "token ciphertext has a bad IV or tag length");
    try {
      const decipher = createDecipheriv(ALGORITHM, key, ivBytes);
      decipher.setAAD(Buffer.from(connectionId, "utf8"));
      decipher.setAuthTag(tagBytes);
      return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]).toString("utf8");
    } catch {
      throw new VaultError("authentication_failed", "token ciphertext failed authentication (tampered, or belongs to another connection)");
    }
  }
}

/** A stable, one-way name for a token: rate-cap keys, the read-ahead cache and 401/403 errors tell tokens apart without holding them. */
export function tokenFingerprint(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 32);
}
