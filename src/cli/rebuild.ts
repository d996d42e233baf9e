import type { Command } from 'commander';
import type { RebuildReport } from '../ledger';
import type { CliContext } from './context';
import { actorOf, actorOption, reasonOption } from './options';
import { CliError, printJson, printLine, printTable, stateText, UsageError } from './output';

export function registerRebuildCommand(program: Command, ctx: CliContext): void {
  program
    .command('rebuild')
    .description("recompute every payment's state from the stored events and list where the ledger differs")
    .option('--dry-run', 'only list the differences (the consistency check); write nothing')
    .addOption(actorOption())
    .addOption(reasonOption())
    .action(async (options: { dryRun?: boolean; actor?: string; reason?: string }, command: Command) => {
      const dryRun = options.dryRun ?? false;
      if (!dryRun && !options.reason) throw new UsageError('rebuild without --dry-run needs --reason');
      const ledger = await ctx.ledger();
      const report = await ledger.rebuild({ dryRun });
      const action = report.applied
        ? await ledger.recordAction({
            actor: actorOf(options),
            reason: options.reason ?? null,
            action: 'rebuild',
            target: null,
            count: report.differences.length,
            dryRun: false,
            details: { paymentIds: report.differences.map((difference) => difference.paymentId) },
          })
        : null;
      // The corrections written are recorded above even when a later batch failed; then the command fails.
      const failure = rebuildFailure(report);
      if (command.optsWithGlobals().json) {
        printJson({ ...report, actionId: action?.id ?? null });
        if (failure) throw failure;
        return;
      }
      printTable(
        report.differences.map(({ paymentId, ledger: held, rebuilt }) => ({
          paymentId,
          ledger: stateText(held),
          rebuilt: stateText(rebuilt),
        })),
        ['paymentId', 'ledger', 'rebuilt'],
      );
      printLine(
        `${report.checked} payment(s) checked, ${report.differences.length} difference(s)` +
          (report.skipped.length
            ? `, ${report.skipped.length} skipped (raw events cleared by retention)`
            : '') +
          (report.changed.length
            ? `, ${report.changed.length} written to while it ran and left as they are (run it again)`
            : '') +
          (report.applied
            ? `; applied as operator action ${action?.id}`
            : dryRun
              ? '; dry run, nothing written'
              : ''),
      );
      if (failure) throw failure;
    });
}

/** Exit code of a rebuild that left work undone: a script must not read it as "the ledger matches its events". */
export const REBUILD_INCOMPLETE_EXIT_CODE = 3;

/**
 * How a rebuild that left payments behind ends: 1 when a correction batch failed (naming the payments written to
 * meanwhile too); else 3 when payments were written to while it ran and were left as they are (their
 * difference, if any, is unknown until it runs again).
 */
export function rebuildFailure(report: RebuildReport): CliError | undefined {
  const changed = report.changed.length
    ? `${report.changed.length} payment(s) written to while the rebuild ran were not compared or corrected`
    : undefined;
  if (report.failed) {
    return new CliError(
      `correcting stopped at a failed transaction (${report.failed.error}); ` +
        `${report.failed.paymentIds.length} payment(s) not corrected${changed ? `; ${changed}` : ''}: run it again`,
    );
  }
  if (changed) return new CliError(`${changed}: run it again`, { exitCode: REBUILD_INCOMPLETE_EXIT_CODE });
  return undefined;
}
