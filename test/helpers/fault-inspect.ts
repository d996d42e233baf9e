import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Ledger, StoredEvent } from '../../src/ledger';
import { STATUS_EVENTS_QUEUE } from '../../src/queue';
import type { TrafficPlan } from './fault-traffic';
import { waitFor } from './wait-for';

/** What the ledger holds after a fault run, measured against the events that were sent. */
export interface LedgerFindings {
  /** Event rows (one per event id: the column is unique). */
  recorded: number;
  byOutcome: Record<string, number>;
  /** Sent event ids with no row. */
  missing: string[];
  /** Rows for event ids that were never sent. */
  unexpected: string[];
  /** Sum over events of (deliveries − 1): how often the dedupe gate refused an event a second time. */
  duplicatesRefused: number;
  /** Event ids the worker brought to the ledger more than once (each one refused after the first). */
  seenMoreThanOnce: string[];
  /** Events with more than one state change recorded against them (an event applied twice). */
  changedTwice: string[];
  /** Payments whose final state is not the one their lifecycle implies. */
  wrongFinal: { paymentId: string; expected: string; actual: string }[];
}

export async function inspectLedger(ledger: Ledger, plan: TrafficPlan): Promise<LedgerFindings> {
  const rows: StoredEvent[] = [];
  for (let afterSeq = 0; ;) {
    const page = await ledger.listEvents({ afterSeq, limit: 1000 });
    if (page.length === 0) break;
    rows.push(...page);
    afterSeq = page[page.length - 1]!.seq;
  }
  const planned = new Set(plan.events.map((event) => event.eventId));
  const recorded = new Set(rows.map((row) => row.eventId));
  const byOutcome: Record<string, number> = {};
  for (const row of rows) byOutcome[row.outcome] = (byOutcome[row.outcome] ?? 0) + 1;

  const changedTwice: string[] = [];
  const wrongFinal: LedgerFindings['wrongFinal'] = [];
  const eventIdBySeq = new Map(rows.map((row) => [row.seq, row.eventId]));
  for (const payment of plan.payments) {
    const changesPerEvent = new Map<number, number>();
    for (const change of await ledger.listStateChanges(payment.paymentId)) {
      if (change.eventSeq === null) continue;
      changesPerEvent.set(change.eventSeq, (changesPerEvent.get(change.eventSeq) ?? 0) + 1);
    }
    for (const [seq, n] of changesPerEvent) if (n > 1) changedTwice.push(eventIdBySeq.get(seq) ?? `#${seq}`);
    const held = await ledger.getPayment(payment.paymentId);
    const expected = `${payment.finalStage}/${payment.finalStatusCode}`;
    const actual = held ? `${held.stage}/${held.statusCode}` : 'absent';
    if (actual !== expected) wrongFinal.push({ paymentId: payment.paymentId, expected, actual });
  }
  return {
    recorded: rows.length,
    byOutcome,
    missing: [...planned].filter((eventId) => !recorded.has(eventId)),
    unexpected: [...recorded].filter((eventId) => !planned.has(eventId)),
    duplicatesRefused: rows.reduce((sum, row) => sum + row.deliveries - 1, 0),
    seenMoreThanOnce: rows.filter((row) => row.deliveries > 1).map((row) => row.eventId),
    changedTwice,
    wrongFinal,
  };
}

/** Events the ledger has recorded so far (any outcome); cheap enough to poll. */
export async function countRecorded(ledger: Ledger): Promise<number> {
  const { eventsByOutcome } = await ledger.counts();
  return Object.values(eventsByOutcome).reduce((sum, n) => sum + (n ?? 0), 0);
}

/** What BullMQ itself says about the status-events jobs. */
export interface QueueFindings {
  counts: Record<string, number>;
  /** `stalled` entries in the queue's event stream: jobs stall detection moved back to wait. */
  stalledEvents: number;
  /** Jobs started more than once (a stall or a retry), by id. */
  startedMoreThanOnce: string[];
  /** Jobs whose stalled counter is above zero, by id. */
  stalledJobs: string[];
  /** Jobs not completed (at most 20), with what BullMQ holds about them. */
  unfinished: { id: string; state: string; attemptsStarted: number; attemptsMade: number; lock: boolean }[];
}

export async function inspectQueue(redisUrl: string): Promise<QueueFindings> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(STATUS_EVENTS_QUEUE, { connection });
  try {
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'completed', 'failed');
    const jobs = await queue.getJobs(['completed', 'failed', 'active', 'wait', 'delayed'], 0, -1);
    const stream = await connection.xrange(`bull:${STATUS_EVENTS_QUEUE}:events`, '-', '+');
    const stalledEvents = stream.filter(
      ([, fields]) => fields[0] === 'event' && fields[1] === 'stalled',
    ).length;
    const unfinished: QueueFindings['unfinished'] = [];
    for (const state of ['active', 'wait', 'delayed', 'failed'] as const) {
      for (const job of await queue.getJobs([state], 0, 19)) {
        const lock = (await connection.exists(`bull:${STATUS_EVENTS_QUEUE}:${job.id}:lock`)) === 1;
        unfinished.push({
          id: job.id!,
          state,
          attemptsStarted: job.attemptsStarted,
          attemptsMade: job.attemptsMade,
          lock,
        });
      }
    }
    return {
      counts,
      stalledEvents,
      unfinished,
      startedMoreThanOnce: jobs.filter((job) => job.attemptsStarted > 1).map((job) => job.id!),
      stalledJobs: jobs.filter((job) => job.stalledCounter > 0).map((job) => job.id!),
    };
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/**
 * Waits until the ledger holds `events` rows and the queue has nothing waiting, active or delayed. A job that a
 * crash left active without a live worker comes back only through BullMQ's stall detection (lock 30 s, check
 * every 30 s), so this can take a minute.
 */
export async function waitUntilSettled(
  ledger: Ledger,
  redisUrl: string,
  events: number,
  timeoutMs = 100_000,
): Promise<void> {
  let recorded = 0;
  let counts: Record<string, number> = {};
  try {
    await waitFor(async () => (recorded = await countRecorded(ledger)) >= events, timeoutMs);
    await waitFor(async () => {
      ({ counts } = await inspectQueue(redisUrl));
      return (counts.wait ?? 0) + (counts.active ?? 0) + (counts.delayed ?? 0) === 0;
    }, timeoutMs);
  } catch (error) {
    const queue = await inspectQueue(redisUrl);
    throw new Error(
      `not settled: ledger holds ${recorded} of ${events} events; jobs ${JSON.stringify(queue.counts)}, ` +
        `stalled ${JSON.stringify(queue.stalledJobs)}, unfinished ${JSON.stringify(queue.unfinished)}`,
      { cause: error },
    );
  }
}

/** A connection kept open to read the status-events job counts while a test runs. */
export interface QueueProbe {
  counts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export function openQueueProbe(redisUrl: string): QueueProbe {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(STATUS_EVENTS_QUEUE, { connection });
  return {
    counts: () => queue.getJobCounts('wait', 'active', 'delayed', 'completed', 'failed'),
    close: async () => {
      await queue.close();
      connection.disconnect();
    },
  };
}
