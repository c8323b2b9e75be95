// Replicate's prediction statuses: ranks, the terminal set and the SQL derived from them.

export const TERMINAL_STATUSES = ["succeeded", "failed", "canceled", "aborted"] as const;
export const IN_PROGRESS_STATUSES = ["starting", "processing"] as const;

// A prediction only moves forward: starting → processing → (a status added after this was written)
// → a terminal status. A page fetched earlier but written later must not undo a newer state.
const RANK: Record<string, number> = { starting: 0, processing: 1, ...Object.fromEntries(TERMINAL_STATUSES.map((s) => [s, 3])) };
const UNKNOWN_RANK = 2;

export const statusRank = (status: string): number => RANK[status] ?? UNKNOWN_RANK;

/** `'a', 'b'` for an SQL IN list (the statuses are constants, never input). */
export const sqlList = (statuses: readonly string[]): string => statuses.map((s) => `'${s}'`).join(", ");

export const sqlStatusRank = (column: string): string =>
  `CASE ${column} ${Object.entries(RANK)
    .map(([s, r]) => `WHEN '${s}' THEN ${r}`)
    .join(" ")} ELSE ${UNKNOWN_RANK} END`;
