import type { PaymentStatusView } from '../ledger';

/** A failure the operator can act on: printed as one line on stderr, never with a stack unless --verbose. */
export class CliError extends Error {
  override name = 'CliError';
  /** 1 for a failure, 2 for a usage error (bad or missing arguments), 3 for a rebuild that left work undone. */
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Bad or missing arguments that commander itself cannot see (exit 2). */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

/** A payment's compared state in one line: `captured (9), captured 1500, refunded 0`. */
export function stateText(view: PaymentStatusView | null, absent = 'none'): string {
  if (!view) return absent;
  return `${view.stage} (${view.statusCode ?? '-'}), captured ${view.capturedTotal}, refunded ${view.refundedTotal}`;
}

export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One JSON object per line, for streams (`events --follow --json`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// Cell text stays on one line and cannot steer the terminal.
// eslint-disable-next-line no-control-regex -- matching control characters is the point here
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
const MAX_CELL = 80;

export function cell(value: unknown, max = MAX_CELL): string {
  if (value === null || value === undefined) return '-';
  const text = (typeof value === 'string' ? value : JSON.stringify(value)).replace(CONTROL, ' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A plain aligned table with a header line; `(none)` when there are no rows. */
export function printTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => line[i]!.length)));
  const render = (line: readonly string[]) =>
    line
      .map((text, i) => text.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${[render(columns), ...cells.map(render)].join('\n')}\n`);
}

/** `name: value` lines for one record, never cut short. */
export function printFields(record: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(record).map((key) => key.length));
  for (const [key, value] of Object.entries(record)) {
    process.stdout.write(`${`${key}:`.padEnd(width + 2)}${cell(value, Infinity)}\n`);
  }
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}
