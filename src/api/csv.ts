import { stringify } from "csv-stringify/sync";

// OWASP CSV injection: a spreadsheet reads a cell starting with one of these as a formula. Text
// from the provider (model and deployment names) is neutralised with a leading quote; numbers are
// written as they are.
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * Rows as CSV quoted per RFC 4180 (fields holding a quote, comma or line break, a bare CR too, are
 * quoted, quotes doubled) under a header row of `columns`, also when there are no rows; lines end in
 * \n as they always have here.
 */
export function toCsv(rows: object[], columns: string[]): string {
  return stringify(rows, {
    header: true,
    columns,
    // csv-stringify quotes \n but not a bare \r, which spreadsheets also read as a line break.
    quoted_match: /\r/,
    cast: { string: (value) => (FORMULA_START.test(value) ? `'${value}` : value) },
  });
}
