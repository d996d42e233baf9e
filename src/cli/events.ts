import { Option, type Command } from 'commander';
import { EVENT_OUTCOMES, type EventFilter, type EventOutcome, type StoredEvent } from '../ledger';
import type { CliContext } from './context';
import { limitOption, sinceOption, untilOption } from './options';
import { cell, iso, printJson, printJsonLine, printLine, printTable } from './output';

interface EventsOptions {
  outcome?: EventOutcome;
  type?: string;
  payment?: string;
  since?: number;
  until?: number;
  limit: number;
  follow?: boolean;
}

const FOLLOW_EVERY_MS = 1_000;
const DEFAULT_WINDOW_MS = 24 * 3_600_000;
const COLUMNS = [
  'seq',
  'receivedAt',
  'eventId',
  'source',
  'type',
  'paymentId',
  'statusCode',
  'outcome',
  'reason',
];

function row(event: StoredEvent) {
  return {
    seq: event.seq,
    receivedAt: iso(event.receivedAt),
    eventId: event.eventId,
    source: event.source,
    type: event.type,
    paymentId: event.paymentId,
    statusCode: event.statusCode,
    changeTime: event.changeTime,
    outcome: event.outcome,
    reason: event.reason,
    deliveries: event.deliveries,
    replayOf: event.replayOf,
  };
}

/** Waits `ms`, or less when `stop` fires first. */
function pause(ms: number, stop: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), stop]).finally(() =>
    clearTimeout(timer),
  );
}

/** New events as they are stored, until SIGINT; one JSON object per line with --json. */
async function follow(ctx: CliContext, filter: Omit<EventFilter, 'limit'>, limit: number, json: boolean) {
  const stop = new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  let stopped = false;
  void stop.then(() => (stopped = true));
  let afterSeq = filter.afterSeq ?? 0;
  while (!stopped) {
    const page = await (await ctx.ledger()).listEvents({ ...filter, afterSeq, limit });
    for (const event of page) {
      afterSeq = event.seq;
      const fields: Record<string, unknown> = row(event);
      if (json) printJsonLine(fields);
      else printLine(COLUMNS.map((column) => cell(fields[column])).join('  '));
    }
    if (page.length < limit) await pause(FOLLOW_EVERY_MS, stop);
  }
}

export function registerEventsCommand(program: Command, ctx: CliContext): void {
  program
    .command('events')
    .description('stored events, oldest first (default: received in the last 24h; with --follow: from now)')
    .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(EVENT_OUTCOMES))
    .option('--type <type>', 'only events of this type')
    .option('--payment <paymentId>', 'only events of this payment')
    .addOption(sinceOption('events received'))
    .addOption(untilOption('events received'))
    .addOption(limitOption(100))
    .option('--follow', 'keep printing new events every second until Ctrl-C')
    .action(async (options: EventsOptions, command: Command) => {
      const json = Boolean(command.optsWithGlobals().json);
      const filter = {
        ...(options.outcome && { outcome: options.outcome }),
        ...(options.type && { type: options.type }),
        ...(options.payment && { paymentId: options.payment }),
        since: options.since ?? (options.follow ? Date.now() : Date.now() - DEFAULT_WINDOW_MS),
        ...(options.until !== undefined && { until: options.until }),
      };
      if (options.follow) return follow(ctx, filter, options.limit, json);
      const rows = (await (await ctx.ledger()).listEvents({ ...filter, limit: options.limit })).map(row);
      if (json) return printJson(rows);
      printTable(rows, COLUMNS);
    });
}
