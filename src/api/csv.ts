import { stringify } from "csv-stringify/sync";

// CSV injection (OWASP): provider text (model, deployment names) starting with one of these would be a formula, so it gets a leading quote.
const FORMULA_START = /^[=+\-@\t\r]/;

/** RFC 4180 under a header row of `columns`, also when there are no rows; lines end in \n as they always have here. */
export function toCsv(rows: object[], columns: string[]): string {
  return stringify(rows, {
    header: true,
    columns,
    // csv-stringify quotes \n but not a bare \r, which spreadsheets also read as a line break.
    quoted_match: /\r/,
    cast: { string: (value) => (FORMULA_START.test(value) ? `'${value}` : value) },
  });
}
