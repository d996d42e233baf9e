#!/usr/bin/env node
/**
 * `paystate`: the on-call CLI. Works directly against REDIS_URL and LEDGER_PATH (and the rest of the service's
 * environment, parsed by loadConfig). Every command prints a table, or JSON with --json; every failure is one
 * line on stderr and a non-zero exit (1; 2 for bad arguments; 3 for a rebuild that left work undone), with a
 * stack trace only under --verbose.
 */
import { Command, CommanderError } from 'commander';
import { registerActionsCommand } from './actions';
import { createCliContext, type CliContext } from './context';
import { registerEventsCommand } from './events';
import { registerFailedCommands } from './failed';
import { registerCheckCommands } from './keys';
import { registerLedgerCommands } from './ledger-copy';
import { CliError } from './output';
import { registerPaymentCommand } from './payment';
import { registerRebuildCommand } from './rebuild';
import { registerReconcileCommand } from './reconcile';
import { registerReplayCommand } from './replay';
import { registerSendCommand } from './send';

/** Grace period for closing Redis and the ledger before the process is made to exit. */
const EXIT_GRACE_MS = 3_000;

const EXAMPLES = `
Examples:
  paystate failed list --since 2h
  paystate failed show evt-123
  paystate failed retry --all --type payment.captured --reason "fixed in 1.4.2" --yes
  paystate replay --payment 3254564310_0 --dry-run
  paystate replay --payment 3254564310_0 --reason "lost capture after SQLite busy"
  paystate payment 3254564310_0 --json
  paystate events --outcome invalid --since 1d
  paystate rebuild --dry-run
  paystate ledger copy --from sqlite --to postgres --dry-run

Every command takes --json and --verbose. Commands that change something record an operator action
(who: --actor or $USER, why: --reason, required for bulk changes); "paystate actions" lists them.`;

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('paystate')
    .description('on-call tools for paystate: dead letters, retries, replays, payments, consistency checks')
    .option('--json', 'print JSON instead of tables')
    .option('--verbose', 'debug logs on stderr, and stack traces with errors')
    .exitOverride()
    .addHelpText('after', EXAMPLES);
  registerFailedCommands(program, ctx);
  registerReplayCommand(program, ctx);
  registerPaymentCommand(program, ctx);
  registerEventsCommand(program, ctx);
  registerSendCommand(program, ctx);
  registerCheckCommands(program, ctx);
  registerReconcileCommand(program, ctx);
  registerRebuildCommand(program, ctx);
  registerActionsCommand(program, ctx);
  registerLedgerCommands(program, ctx);
  return program;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, '; ').trim();

function stackOf(error: unknown): string {
  const lines: string[] = [];
  for (let current = error; current instanceof Error; current = current.cause) {
    lines.push(
      lines.length ? `caused by: ${current.stack ?? current.message}` : (current.stack ?? current.message),
    );
  }
  return lines.join('\n');
}

/** Prints the failure as one line (plus the stack under --verbose) and returns the exit code. */
function reportFailure(error: unknown, verbose: boolean): number {
  // commander has printed its own one-line message (or the help) already.
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  const message = error instanceof Error ? error.message : String(error);
  const hint = verbose || error instanceof CliError ? '' : ' (--verbose shows the stack trace)';
  process.stderr.write(`paystate: ${oneLine(message)}${hint}\n`);
  if (verbose) process.stderr.write(`${stackOf(error)}\n`);
  return error instanceof CliError ? error.exitCode : 1;
}

/** Runs one command line; resolves the exit code once Redis and the ledger are closed. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const verbose = argv.includes('--verbose');
  const ctx = createCliContext({ verbose });
  let code = 0;
  try {
    await buildProgram(ctx).parseAsync([...argv]);
  } catch (error) {
    code = reportFailure(error, verbose);
  }
  try {
    await ctx.close();
  } catch (error) {
    code = Math.max(code, reportFailure(error, verbose));
  }
  return code;
}

/** The process entry: sets the exit code, and makes sure a forgotten handle cannot keep the process alive. */
export function runCli(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    // The reader went away (`paystate events | head`): stop quietly, as other command-line tools do.
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  void main().then((code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  });
}

if (require.main === module) runCli();
