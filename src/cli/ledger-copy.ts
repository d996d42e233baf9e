import { Option, type Command } from 'commander';
import { ConfigError, loadConfig } from '../config';
import { openLedger, type LedgerLocation } from '../ledger';
import {
  copyLedger,
  DEFAULT_COPY_BATCH,
  LedgerCopyError,
  type LedgerCopyReport,
} from '../ledger/ledger-copy';
import type { CliContext } from './context';
import { actorOf, actorOption, parsePositiveInt, reasonOption } from './options';
import { CliError, printJson, printLine, printTable, UsageError } from './output';
import { startProgress } from './progress';

type Backend = LedgerLocation['kind'];

interface CopyOptions {
  from: Backend;
  to: Backend;
  fromPath?: string;
  fromUrl?: string;
  toPath?: string;
  toUrl?: string;
  dryRun?: boolean;
  overwrite?: boolean;
  batchSize: number;
  actor?: string;
  reason?: string;
}

const backendOption = (flag: string, description: string) =>
  new Option(flag, description).choices(['sqlite', 'postgres']).makeOptionMandatory();

/**
 * The location of one side: the SQLite file of --from-path/--to-path or LEDGER_PATH, or the PostgreSQL database of
 * --from-url/--to-url or LEDGER_URL with the LEDGER_POOL_SIZE / LEDGER_STATEMENT_TIMEOUT / LEDGER_TLS* settings.
 * Parsed by loadConfig like every other setting (its messages never echo a value, so no password is printed).
 */
function locationOf(
  ctx: CliContext,
  side: 'from' | 'to',
  backend: Backend,
  given: { path?: string; url?: string },
): LedgerLocation {
  ctx.config(); // the environment as a whole must be valid, as for every command
  const flag = `--${side}-${backend === 'sqlite' ? 'path' : 'url'}`;
  const other = backend === 'sqlite' ? given.url : given.path;
  if (other !== undefined)
    throw new UsageError(
      `--${side}-${backend === 'sqlite' ? 'url' : 'path'} does not go with --${side} ${backend}`,
    );
  const env = { ...process.env };
  if (backend === 'sqlite') {
    // LEDGER_URL would select PostgreSQL; here only LEDGER_PATH (or its default) matters.
    delete env.LEDGER_URL;
    if (given.path !== undefined) env.LEDGER_PATH = given.path;
  } else {
    if (given.url !== undefined) env.LEDGER_URL = given.url;
    if (!env.LEDGER_URL)
      throw new UsageError(`--${side} postgres needs LEDGER_URL or ${flag} postgres://user@host:port/db`);
  }
  try {
    return loadConfig(env).ledger.location;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new UsageError(`${flag}: ${error.problems.join('; ')}`);
  }
}

function printReport(report: LedgerCopyReport): void {
  if (report.dryRun) {
    printTable(
      report.tables.map((table) => ({
        table: table.table,
        'rows to copy': table.sourceRows,
        'max seq': table.sourceMaxSeq,
        'target rows now': table.targetRowsBefore,
      })),
      ['table', 'rows to copy', 'max seq', 'target rows now'],
    );
    printLine(
      `dry run: ${report.sourceRows} row(s) would be copied from ${report.from} to ${report.to}` +
        (report.targetRowsBefore === 0
          ? '; the target is empty'
          : report.overwrite
            ? `, replacing the ${report.targetRowsBefore} row(s) the target holds`
            : `; the target holds ${report.targetRowsBefore} row(s), so the copy would be refused`) +
        '; nothing written',
    );
    return;
  }
  printTable(
    report.tables.map((table) => ({
      table: table.table,
      'source rows': table.sourceRows,
      'target rows': table.targetRows,
      'source max seq': table.sourceMaxSeq,
      'target max seq': table.targetMaxSeq,
      match: table.match ? 'yes' : 'NO',
    })),
    ['table', 'source rows', 'target rows', 'source max seq', 'target max seq', 'match'],
  );
  printLine(
    `copied ${report.sourceRows} row(s) from ${report.from} to ${report.to} in ${(report.ms / 1000).toFixed(1)} s` +
      (report.targetRowsBefore > 0 ? ` (replaced ${report.targetRowsBefore} row(s))` : '') +
      (report.matched ? '; counts and highest sequence numbers match' : '; COUNTS DIFFER'),
  );
}

const COPY_HELP = `
Moving a SQLite ledger to PostgreSQL (the reverse, --from postgres --to sqlite, works the same way):
  1. stop web, worker and scheduler (nothing may write to the ledger during the copy)
  2. paystate ledger copy --from sqlite --to postgres --dry-run      # row counts; writes nothing
  3. paystate ledger copy --from sqlite --to postgres --reason "move to PostgreSQL"
     (one transaction on the target; counts and highest sequence numbers compared after; exit 1 if they differ)
  4. set LEDGER_URL for every process and start them again

The source is read in one snapshot and never written; the operator action is recorded in the target.`;

export function registerLedgerCommands(program: Command, ctx: CliContext): void {
  const ledger = program.command('ledger').description('the ledger as a whole: moving it between backends');
  ledger
    .command('copy')
    .description(
      'copy every row of the ledger to an empty ledger on the other backend, ids and sequence numbers kept, ' +
        'in one transaction; then compare counts (stop every writer first)',
    )
    .addOption(backendOption('--from <backend>', 'where the rows are now'))
    .addOption(backendOption('--to <backend>', 'where they go'))
    .option('--from-path <file>', 'the SQLite ledger to read (default: LEDGER_PATH)')
    .option('--from-url <url>', 'the PostgreSQL ledger to read (default: LEDGER_URL)')
    .option('--to-path <file>', 'the SQLite ledger to write (default: LEDGER_PATH)')
    .option('--to-url <url>', 'the PostgreSQL ledger to write (default: LEDGER_URL)')
    .option('--dry-run', 'count what would be copied and check the target; write nothing')
    .option(
      '--overwrite',
      'delete the rows the target already holds (in the same transaction) instead of refusing',
    )
    .addOption(
      new Option('--batch-size <n>', 'rows read and written per batch')
        .argParser(parsePositiveInt)
        .default(DEFAULT_COPY_BATCH),
    )
    .addOption(actorOption())
    .addOption(reasonOption())
    .addHelpText('after', COPY_HELP)
    .action(async (options: CopyOptions, command: Command) => {
      const dryRun = options.dryRun ?? false;
      if (options.from === options.to)
        throw new UsageError('--from and --to must name different backends (sqlite, postgres)');
      if (!dryRun && !options.reason) throw new UsageError('a copy without --dry-run needs --reason');
      const from = locationOf(ctx, 'from', options.from, { path: options.fromPath, url: options.fromUrl });
      const to = locationOf(ctx, 'to', options.to, { path: options.toPath, url: options.toUrl });

      const progress = new Map<string, number>();
      let bar: ReturnType<typeof startProgress> | undefined;
      let report: LedgerCopyReport;
      try {
        report = await copyLedger({
          from,
          to,
          dryRun,
          overwrite: options.overwrite ?? false,
          batchSize: options.batchSize,
          onStart: (rows) => (bar = startProgress(rows, 'copying')),
          onProgress: (table, copied) => {
            const step = copied - (progress.get(table) ?? 0);
            progress.set(table, copied);
            for (let i = 0; i < step; i++) bar?.increment();
          },
        });
      } catch (error) {
        if (error instanceof LedgerCopyError) throw new CliError(error.message, { cause: error });
        throw new CliError(`ledger copy failed, nothing was committed: ${(error as Error).message}`, {
          cause: error,
        });
      } finally {
        bar?.stop();
      }

      let actionId: number | null = null;
      if (report.copied) {
        // Recorded in the ledger that lives on, after the comparison (so its own row is not counted).
        const target = await openLedger(to);
        try {
          const action = await target.recordAction({
            actor: actorOf(options),
            reason: options.reason ?? null,
            action: 'ledger.copy',
            target: `${report.from} → ${report.to}`,
            count: report.sourceRows,
            dryRun: false,
            details: { matched: report.matched, overwrite: report.overwrite, tables: report.tables },
          });
          actionId = action.id;
        } finally {
          await target.close();
        }
      }

      if (command.optsWithGlobals().json) printJson({ ...report, actionId });
      else {
        printReport(report);
        if (actionId !== null) printLine(`recorded as operator action ${actionId} in the target`);
      }
      if (report.refusal) throw new CliError(`the copy would be refused: ${report.refusal}`);
      if (report.matched === false)
        throw new CliError('after the copy the counts differ (see the table): do not switch LEDGER_URL yet');
    });
}
