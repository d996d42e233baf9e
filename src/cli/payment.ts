import type { Command } from 'commander';
import { paymentJson } from '../http/payment-json';
import type { StateChange, StoredEvent } from '../ledger';
import type { CliContext } from './context';
import { CliError, iso, printFields, printJson, printLine, printTable } from './output';

/** Every stored event and state change of the payment, oldest first, as `GET /v1/payments/:id/events` lists them. */
function timelineOf(events: readonly StoredEvent[], changes: readonly StateChange[]) {
  return (
    [
      ...events.map((event) => ({
        at: event.processedAt,
        entry: 'event' as const,
        eventId: event.eventId,
        source: event.source,
        type: event.type,
        statusCode: event.statusCode,
        statusCodeChangeDateTime: event.changeTime,
        outcome: event.outcome,
        reason: event.reason,
        deliveries: event.deliveries,
        replayOf: event.replayOf,
        receivedAt: iso(event.receivedAt),
      })),
      ...changes.map((change) => ({
        at: change.at,
        entry: 'change' as const,
        kind: change.kind,
        fromStage: change.fromStage,
        toStage: change.toStage,
        fromStatusCode: change.fromStatusCode,
        toStatusCode: change.toStatusCode,
        cause: change.cause,
      })),
    ]
      // Stable sort: within one millisecond an event stays before the change it caused.
      .sort((a, b) => a.at - b.at)
      .map(({ at, ...entry }) => ({ ...entry, at: iso(at) }))
  );
}

export function registerPaymentCommand(program: Command, ctx: CliContext): void {
  program
    .command('payment')
    .description('one payment: current state, fulfilment decision and full timeline')
    .argument('<paymentId>')
    .action(async (paymentId: string, _options: unknown, command: Command) => {
      const ledger = ctx.ledger();
      const payment = await ledger.getPayment(paymentId);
      if (!payment) throw new CliError(`no payment ${paymentId} in the ledger`);
      const [events, changes] = await Promise.all([
        ledger.listPaymentEvents(paymentId),
        ledger.listStateChanges(paymentId),
      ]);
      const shown = {
        payment: paymentJson(payment, ctx.config().fulfilment.releaseOn),
        timeline: timelineOf(events, changes),
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
