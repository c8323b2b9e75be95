// Opaque keyset cursors for the paged lists (events, connections): the time and id of the last row
// of a page, base64url. A cursor that does not decode to a real time and an id of the expected shape
// was not issued by this API, and is refused before it reaches SQL.

export const encodeCursor = (at: Date, id: string | bigint): string => Buffer.from(`${at.toISOString()}|${id}`).toString("base64url");

/** The position a cursor of ours holds; null for anything else (`id` must match `idPattern` whole). */
export function decodeCursor(cursor: string, idPattern: RegExp): { at: Date; id: string } | null {
  const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|(.+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match || !idPattern.test(match[2]!)) return null;
  const at = new Date(match[1]!);
  // Written back exactly as we wrote it: month 13 or year 0000 are not times we issue.
  const issued = !Number.isNaN(at.getTime()) && at.getTime() >= 0 && at.toISOString() === match[1];
  return issued ? { at, id: match[2]! } : null;
}
