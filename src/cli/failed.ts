import type { Command } from 'commander';
import type { Job, Queue } from 'bullmq';
import type { StoredEvent } from '../ledger';
import { STATUS_EVENTS_QUEUE, zStatusEventJob, type StatusEventJob } from '../queue';
import { confirmBulk } from './confirm';
import type { CliContext } from './context';
import { actorOf, actorOption, limitOption, reasonOption, sinceOption } from './options';
import { CliError, iso, printFields, printJson, printLine, printTable, UsageError } from './output';
import { startProgress } from './progress';

interface FailedFilter {
  since?: number;
  type?: string;
  limit?: number;
}

const PAGE = 200;

/** The event a job carries, read from its raw body (the whole delivery) and position. */
function eventOf(data: unknown): Record<string, unknown> | null {
  const parsed = zStatusEventJob.safeParse(data);
  if (!parsed.success) return null;
  try {
    const body: unknown = JSON.parse(parsed.data.rawBody);
    const item = parsed.data.rawIndex === null ? body : (body as unknown[])[parsed.data.rawIndex];
    return item && typeof item === 'object' ? (item as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function idOf(payload: unknown): string | null {
  const id = (payload as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' ? id : null;
}

function typeOf(job: Job): string {
  const type = (job.data as { type?: unknown } | undefined)?.type;
  return typeof type === 'string' ? type : job.name;
}

function failedRow(job: Job) {
  const event = eventOf(job.data);
  return {
    eventId: job.id ?? null,
    paymentId: idOf(event?.payment),
    refundId: idOf(event?.refund),
    type: typeOf(job),
    attempts: job.attemptsMade,
    lastError: job.failedReason ?? null,
    failedAt: iso(job.finishedOn),
  };
}

/** Failed jobs, newest first (BullMQ's failed set is ordered by when they failed), filtered. */
async function findFailedJobs(queue: Queue, filter: FailedFilter): Promise<Job[]> {
  const found: Job[] = [];
  for (let start = 0; ; start += PAGE) {
    const page = (await queue.getFailed(start, start + PAGE - 1)).filter(Boolean);
    for (const job of page) {
      if (filter.since !== undefined && (job.finishedOn ?? job.timestamp) < filter.since) return found;
      if (filter.type !== undefined && typeOf(job) !== filter.type) continue;
      found.push(job);
      if (filter.limit !== undefined && found.length >= filter.limit) return found;
    }
    if (page.length < PAGE) return found;
  }
}

async function jobOrFail(queue: Queue<StatusEventJob>, eventId: string): Promise<Job> {
  const job = await queue.getJob(eventId);
  if (!job) throw new CliError(`no job for event ${eventId} in queue ${STATUS_EVENTS_QUEUE}`);
  return job;
}

function rawEventOf(stored: StoredEvent | undefined, job: Job): unknown {
  if (stored?.rawBody) {
    try {
      const body: unknown = JSON.parse(stored.rawBody);
      return stored.rawIndex === null ? body : (body as unknown[])[stored.rawIndex];
    } catch {
      return stored.rawBody;
    }
  }
  return eventOf(job.data) ?? (job.data as { rawBody?: unknown } | undefined)?.rawBody ?? null;
}

export function registerFailedCommands(program: Command, ctx: CliContext): void {
  const failed = program
    .command('failed')
    .description(`dead letters: failed jobs of queue ${STATUS_EVENTS_QUEUE}`);

  failed
    .command('list')
    .description('failed jobs, newest first: event, payment, type, attempts, last error, failed at')
    .addOption(sinceOption('jobs that failed'))
    .option('--type <type>', 'only events of this type (e.g. payment.captured)')
    .addOption(limitOption(50))
    .action(async (options: FailedFilter & { limit: number }, command: Command) => {
      const rows = (await findFailedJobs(await ctx.statusQueue(), options)).map(failedRow);
      if (command.optsWithGlobals().json) return printJson(rows);
      printTable(
        rows.map((row) => ({ ...row, payment: row.paymentId ?? row.refundId })),
        ['eventId', 'payment', 'type', 'attempts', 'failedAt', 'lastError'],
      );
    });

  failed
    .command('show')
    .description('one failed job: its error and stack trace, and the raw event')
    .argument('<eventId>', 'the event id (= job id)')
    .action(async (eventId: string, _options: unknown, command: Command) => {
      const job = await jobOrFail(await ctx.statusQueue(), eventId);
      const stored = await (await ctx.ledger()).getEvent(eventId);
      const shown = {
        ...failedRow(job),
        state: await job.getState(),
        queuedAt: iso(job.timestamp),
        stacktrace: job.stacktrace ?? [],
        ledger: stored
          ? { outcome: stored.outcome, reason: stored.reason, source: stored.source, seq: stored.seq }
          : null,
        rawEvent: rawEventOf(stored, job),
      };
      if (command.optsWithGlobals().json) return printJson(shown);
      const { stacktrace, rawEvent, ledger, ...fields } = shown;
      printFields({
        ...fields,
        ledgerOutcome: ledger ? `${ledger.outcome}: ${ledger.reason ?? ''}` : 'not in the ledger',
      });
      printLine('\nstack trace (last attempt first):');
      printLine(stacktrace.length ? [...stacktrace].reverse().join('\n---\n') : '(none)');
      printLine('\nraw event:');
      printLine(JSON.stringify(rawEvent, null, 2));
    });

  failed
    .command('retry')
    .description('re-queue failed jobs, as bull-board does (one, or all that match with --all)')
    .argument('[eventId]', 'the event id (= job id) to retry')
    .option('--all', 'every failed job matching --since and --type')
    .addOption(sinceOption('jobs that failed'))
    .option('--type <type>', 'with --all: only events of this type')
    .option('--yes', 'with --all: do not ask')
    .addOption(actorOption())
    .addOption(reasonOption())
    .action(async (eventId: string | undefined, options: RetryOptions, command: Command) => {
      if (eventId !== undefined && options.all) throw new UsageError('give an event id or --all, not both');
      if (eventId === undefined && !options.all) throw new UsageError('give an event id, or --all');
      if (eventId === undefined && !options.reason) throw new UsageError('retry --all needs --reason');
      const queue = await ctx.statusQueue();
      const ledger = await ctx.ledger();
      const jobs =
        eventId !== undefined
          ? [await jobOrFail(queue, eventId)]
          : await findFailedJobs(queue, { since: options.since, type: options.type });
      for (const job of jobs) {
        const state = await job.getState();
        if (eventId !== undefined && state !== 'failed') {
          throw new CliError(`job ${eventId} is ${state}, not failed: nothing to retry`);
        }
      }
      const result = { retried: [] as string[], skipped: [] as { eventId: string; reason: string }[] };
      if (jobs.length && eventId === undefined) {
        if (!(await confirmBulk(`Retry ${jobs.length} failed job(s)?`, options.yes))) {
          throw new CliError('nothing retried (not confirmed)');
        }
      }
      const progress = startProgress(jobs.length, 'retrying');
      try {
        for (const job of jobs) {
          try {
            await job.retry('failed');
            result.retried.push(job.id!);
          } catch (error) {
            if (eventId !== undefined) throw error;
            // Someone else (bull-board, another operator) may have retried it meanwhile.
            result.skipped.push({ eventId: job.id!, reason: (error as Error).message });
          }
          progress.increment();
        }
      } finally {
        progress.stop();
        if (result.retried.length) {
          await ledger.recordAction({
            actor: actorOf(options),
            reason: options.reason ?? null,
            action: 'failed.retry',
            target: eventId ?? 'all',
            count: result.retried.length,
            dryRun: false,
            details: { eventIds: result.retried, since: iso(options.since), type: options.type ?? null },
          });
        }
      }
      if (command.optsWithGlobals().json) return printJson(result);
      printLine(`re-queued ${result.retried.length} job(s)`);
      for (const { eventId: id, reason } of result.skipped) printLine(`skipped ${id}: ${reason}`);
    });
}

interface RetryOptions {
  all?: boolean;
  since?: number;
  type?: string;
  yes?: boolean;
  actor?: string;
  reason?: string;
}
