import { loadConfig } from "./local-secrets.js";
import { createDb } from "../db/client.js";
import { logger } from "../logger.js";
import { reencryptTokens } from "../repositories/connections.js";
import { TokenVault } from "../vault.js";

// `npm run vault:rotate`: re-seals every stored token under TOKEN_ENCRYPTION_KEY_ID.
const config = loadConfig();
const db = createDb(config.databaseUrl, 2);
try {
  const vault = new TokenVault(config.encryption.keys, config.encryption.currentKeyId);
  const result = await reencryptTokens(db, vault);
  logger.info("token rotation finished", { ...result, currentKeyId: vault.currentKeyId });
} finally {
  await db.$disconnect();
}
