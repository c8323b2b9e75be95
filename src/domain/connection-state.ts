import type { ConnectionStatus } from "../generated/prisma/enums.js";

// The one place that says which connection status changes are allowed. The repository applies a
// change as a single UPDATE whose WHERE clause names the allowed sources, so concurrent changes
// (a replace racing a disconnect, a verify finishing after it) serialise on the row and the loser
// changes nothing. Disconnected is final: nothing leads out of it.

export type Transition = "verify_ok" | "duplicate_account" | "account_changed" | "credential_rejected" | "replace_token" | "disconnect";

export const TRANSITIONS: Record<Transition, { from: readonly ConnectionStatus[]; to: ConnectionStatus }> = {
  verify_ok: { from: ["pending"], to: "connected" },
  /** Verification found the account already connected in the workspace: paused until the token is replaced. */
  duplicate_account: { from: ["pending"], to: "credential_error" },
  /** The token pasted belongs to another account than the one the connection syncs: paused until the token is replaced. */
  account_changed: { from: ["pending"], to: "credential_error" },
  credential_rejected: { from: ["pending", "connected"], to: "credential_error" },
  replace_token: { from: ["pending", "connected", "credential_error"], to: "pending" },
  disconnect: { from: ["pending", "connected", "credential_error", "disconnected"], to: "disconnected" },
};
