import { Option, type Command } from 'commander';
import type { PaymentStatusView, ReplayResult, StoredEvent } from '../ledger';
import { SignatureError, verifyWebhookSignature, type KeyRing } from '../platform';
import type { CliContext } from './context';
import { actorOf, actorOption, parsePositiveInt, reasonOption, sinceOption, untilOption } from './options';
import { iso, printJson, printLine, printTable, stateText, UsageError } from './output';
import { selectReplayEvents, type ReplaySelection } from './select-replay-events';
import { startProgress } from './progress';

interface ReplayOptions extends ReplaySelection {
  dryRun?: boolean;
  actor?: string;
  reason?: string;
}

/**
 * Why a stored event must not be replayed, or null. Webhook events are verified again against today's key
 * ring, so nothing unsigned (or signed with a revoked key) enters through a replay; polls carry no signature.
 */
function refusal(event: StoredEvent, keyRing: KeyRing): string | null {
  if (event.rawBody === null) return 'raw body cleared by retention';
  if (event.source === 'poll') return null;
  try {
    verifyWebhookSignature(
      Buffer.from(event.rawBody, 'utf8'),
      { signature: event.signature ?? undefined, keyId: event.keyId ?? undefined },
      keyRing,
    );
    return null;
  } catch (error) {
    if (!(error instanceof SignatureError)) throw error;
    return `stored signature not verified: ${error.reason}`;
  }
}

type Replayed = Extract<ReplayResult, { before: unknown }>;

/** Per payment: the state before the first replayed event and after the last. */
function perPayment(results: readonly Replayed[]) {
  const payments = new Map<string, { before: PaymentStatusView | null; after: PaymentStatusView | null }>();
  for (const result of results) {
    if (result.paymentId === null) continue;
    const seen = payments.get(result.paymentId);
    payments.set(result.paymentId, { before: seen ? seen.before : result.before, after: result.after });
  }
  return [...payments].map(([paymentId, { before, after }]) => ({
    paymentId,
    before,
    after,
    changed: JSON.stringify(before) !== JSON.stringify(after),
  }));
}

function targetOf(options: ReplayOptions): string {
  if (options.event !== undefined) return `event ${options.event}`;
  if (options.payment !== undefined) return `payment ${options.payment}`;
  return `received ${iso(options.since)}..${iso(options.until) ?? 'now'}${options.type ? ` type ${options.type}` : ''}`;
}

function checkSelection(options: ReplayOptions): void {
  const selectors = [options.event, options.payment, options.since].filter((given) => given !== undefined);
  if (selectors.length !== 1)
    throw new UsageError('give exactly one of --event, --payment or --since/--until');
  if (options.until !== undefined && options.since === undefined)
    throw new UsageError('--until needs --since');
  if (options.event === undefined && !options.dryRun && !options.reason) {
    throw new UsageError('a bulk replay (--payment, --since) needs --reason');
  }
}

export function registerReplayCommand(program: Command, ctx: CliContext): void {
  program
    .command('replay')
    .description('feed stored raw events back through apply (signatures re-verified first)')
    .option('--event <eventId>', 'one stored event')
    .option('--payment <paymentId>', 'every original event of one payment')
    .addOption(sinceOption('events received'))
    .addOption(untilOption('events received'))
    .option('--type <type>', 'with --payment or --since: only events of this type')
    .option('--dry-run', 'show the state now and after, per payment; write nothing')
    .addOption(
      new Option('--max <n>', 'refuse when more events match').argParser(parsePositiveInt).default(1000),
    )
    .addOption(actorOption())
    .addOption(reasonOption())
    .action(async (options: ReplayOptions, command: Command) => {
      checkSelection(options);
      const ledger = await ctx.ledger();
      const keyRing = ctx.config().webhook.keyRing;
      const skipped: { eventId: string; reason: string }[] = [];
      const accepted: StoredEvent[] = [];
      for (const event of await selectReplayEvents(ledger, options)) {
        const reason = refusal(event, keyRing);
        if (reason === null) accepted.push(event);
        else skipped.push({ eventId: event.eventId, reason });
      }
      const dryRun = options.dryRun ?? false;
      const action =
        !dryRun && accepted.length
          ? await ledger.recordAction({
              actor: actorOf(options),
              reason: options.reason ?? null,
              action: 'replay',
              target: targetOf(options),
              count: accepted.length,
              dryRun: false,
              details: { eventIds: accepted.map((event) => event.eventId), skipped },
            })
          : null;
      const replayed: Replayed[] = [];
      const progress = startProgress(accepted.length, dryRun ? 'dry run' : 'replaying');
      try {
        for (const event of accepted) {
          const result = await ledger.replayEvent(event.eventId, { actionId: action?.id ?? null, dryRun });
          if ('before' in result) replayed.push(result);
          else skipped.push({ eventId: result.eventId, reason: result.outcome });
          progress.increment();
        }
      } finally {
        progress.stop();
      }
      const report = {
        dryRun,
        actionId: action?.id ?? null,
        replayed: replayed.map(({ eventId, replayEventId, paymentId, outcome, reason }) => ({
          eventId,
          replayEventId: dryRun ? null : replayEventId,
          paymentId,
          outcome,
          reason,
        })),
        payments: perPayment(replayed),
        skipped,
      };
      if (command.optsWithGlobals().json) return printJson(report);
      printTable(report.replayed, ['eventId', 'paymentId', 'outcome', 'reason']);
      for (const payment of report.payments) {
        const change = payment.changed
          ? `${stateText(payment.before)} → ${stateText(payment.after)}`
          : 'unchanged';
        printLine(`payment ${payment.paymentId}: ${change}`);
      }
      for (const { eventId, reason } of skipped) printLine(`refused ${eventId}: ${reason}`);
      printLine(
        dryRun
          ? 'dry run: nothing written (each event is tried against the ledger as it is now)'
          : `replayed ${replayed.length} event(s)${action ? ` as operator action ${action.id}` : ''}`,
      );
    });
}
