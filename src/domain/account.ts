import type { AccountType } from "../generated/prisma/enums.js";

/** Which Replicate account: its type and username (Replicate's account endpoint gives no stable id). */
export interface AccountRef {
  type: AccountType;
  username: string;
}

/** `Replicate organization "acme"`: how events name an account. */
export const describeAccount = (a: AccountRef) => `Replicate ${a.type} "${a.username}"`;
