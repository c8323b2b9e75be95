import { stringify } from "csv-stringify/sync";

// OWASP CSV injection: a spreadsheet reads a cell starting with one of these as a formula. Text
// from the provider (model and deployment names) is neutralised with a leading quote; numbers are
// written as they are.
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * Rows as CSV quoted per RFC 4180 (fields holding a quote, comma or line break, a bare CR too, are
 * quoted, quotes doubled) under a header row; lines end in \n as they always have here.
 */
export function toCsv(rows: object[]): string {
  if (rows.length === 0) return "";
  return stringify(rows, {
    header: true,
    // Usage and idle-floor lines share one sheet: every column either has.
    columns: [...new Set(rows.flatMap((r) => Object.keys(r)))],
    // csv-stringify quotes \n but not a bare \r, which spreadsheets also read as a line break.
    quoted_match: /\r/,
    cast: { string: (value) => (FORMULA_START.test(value) ? `'${value}` : value) },
  });
}
