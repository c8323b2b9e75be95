import type { ConnectionStatus } from "../generated/prisma/enums.js";

// The allowed connection status changes. Each is one UPDATE whose WHERE names the allowed sources, so
// concurrent changes serialise on the row and the loser changes nothing. Disconnected is final.

export type Transition =
  "verify_ok" | "duplicate_account" | "account_changed" | "credential_rejected" | "replace_token" | "token_readable" | "disconnect";

export const TRANSITIONS: Record<Transition, { from: readonly ConnectionStatus[]; to: ConnectionStatus }> = {
  verify_ok: { from: ["pending"], to: "connected" },
  // Verification found the account connected elsewhere in the workspace, or another account than the
  // connection syncs: paused until the token is replaced.
  duplicate_account: { from: ["pending"], to: "credential_error" },
  account_changed: { from: ["pending"], to: "credential_error" },
  credential_rejected: { from: ["pending", "connected"], to: "credential_error" },
  replace_token: { from: ["pending", "connected", "credential_error"], to: "pending" },
  // A token paused as unreadable decrypts again (its key was restored): verified again, as a replaced one is.
  token_readable: { from: ["credential_error"], to: "pending" },
  disconnect: { from: ["pending", "connected", "credential_error", "disconnected"], to: "disconnected" },
};
