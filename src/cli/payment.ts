import type { Command } from 'commander';
import { paymentJson, paymentTimeline } from '../http/payment-json';
import type { CliContext } from './context';
import { CliError, printFields, printJson, printLine, printTable } from './output';

export function registerPaymentCommand(program: Command, ctx: CliContext): void {
  program
    .command('payment')
    .description('one payment: current state, fulfilment decision and full timeline')
    .argument('<paymentId>')
    .action(async (paymentId: string, _options: unknown, command: Command) => {
      const ledger = await ctx.ledger();
      const payment = await ledger.getPayment(paymentId);
      if (!payment) throw new CliError(`no payment ${paymentId} in the ledger`);
      const [events, changes] = await Promise.all([
        ledger.listPaymentEvents(paymentId),
        ledger.listStateChanges(paymentId),
      ]);
      const shown = {
        payment: paymentJson(payment, ctx.config().fulfilment.releaseOn),
        timeline: paymentTimeline(events, changes),
      };
      if (command.optsWithGlobals().json) return printJson(shown);
      const { fulfilment, ...state } = shown.payment;
      printFields({
        ...state,
        releasable: `${fulfilment.releasable} (${fulfilment.reason})`,
        dueAt: fulfilment.dueAt,
        releasedAt: fulfilment.releasedAt,
      });
      printLine('\ntimeline (oldest first):');
      printTable(
        shown.timeline.map((entry) =>
          entry.entry === 'event'
            ? {
                at: entry.at,
                entry: `event ${entry.source}`,
                what: `${entry.eventId} ${entry.type ?? ''} code ${entry.statusCode ?? '-'}`,
                result: `${entry.outcome}: ${entry.reason ?? ''}`,
              }
            : {
                at: entry.at,
                entry: `change ${entry.kind}`,
                what: `${entry.fromStage ?? '-'} (${entry.fromStatusCode ?? '-'}) → ${entry.toStage} (${entry.toStatusCode ?? '-'})`,
                result: entry.cause,
              },
        ),
        ['at', 'entry', 'what', 'result'],
      );
    });
}
