import express, { type Router } from 'express';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import type { Ledger, LedgerCounts } from '../ledger';
import type { Logger } from '../log';
import { readQueueFigures, registerQueueGauges, type QueueFigures } from './queue-gauges';

/** Most due checks one scrape counts: past this the figure only says "at least". */
export const CHECKS_DUE_CAP = 10_000;

export interface MetricsRouteOptions {
  /** The app's registry; the receiver's counters are registered on it too. */
  registry: Registry;
  ledger: Ledger;
  /** Queues whose job counts and oldest waiting job are read at scrape time. */
  queues: readonly Queue[];
  log: Logger;
  /** Bound on a scrape's Redis reads. @defaultValue 2000 */
  queueTimeoutMs?: number;
}

interface ScrapeFigures {
  counts: LedgerCounts;
  checksDue: number;
  queues: QueueFigures[] | undefined;
}

/**
 * Prometheus metrics. Ledger and queue figures are read at scrape time, so they count what every process
 * (web, worker, scheduler) wrote, not only this one; each scrape reads them once for all its gauges.
 * Default process metrics (event-loop lag among them) carry the `paystate_` prefix.
 */
export function createMetricsRouter(options: MetricsRouteOptions): Router {
  const { registry, ledger, log } = options;
  collectDefaultMetrics({ register: registry, prefix: 'paystate_' });

  const read = async (): Promise<ScrapeFigures> => {
    const [counts, due, queues] = await Promise.all([
      ledger.counts(),
      ledger.listDueChecks(Date.now(), CHECKS_DUE_CAP),
      readQueueFigures(options.queues, options.queueTimeoutMs ?? 2_000, log),
    ]);
    return { counts, checksDue: due.length, queues };
  };
  let scrape: Promise<ScrapeFigures> | undefined;
  const figures = () => (scrape ??= read());

  const gauge = (name: string, help: string, value: (figures: ScrapeFigures) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(value(await figures()));
      },
    });

  new Gauge({
    name: 'paystate_ledger_events',
    help: 'Stored webhook/poll/replay events by outcome (unknown_code, invalid, failed need attention). duplicate counts re-deliveries: the receiver cannot see them, because queueing with the event id as job id absorbs a re-delivery while its job exists',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      const { counts } = await figures();
      this.reset();
      for (const [outcome, n] of Object.entries(counts.eventsByOutcome)) this.set({ outcome }, n);
    },
  });
  new Gauge({
    name: 'paystate_ledger_payments',
    help: 'Payments by lifecycle stage',
    labelNames: ['stage'],
    registers: [registry],
    async collect() {
      const { counts } = await figures();
      this.reset();
      for (const [stage, n] of Object.entries(counts.paymentsByStage)) this.set({ stage }, n);
    },
  });
  gauge(
    'paystate_reversed_after_release',
    'Payments whose goods were released and that were then refunded, cancelled or reversed',
    (f) => f.counts.reversedAfterRelease,
  );
  gauge(
    'paystate_payments_stale',
    'Payments the reconciler gave up on without a conclusive status: each needs a human',
    (f) => f.counts.stale,
  );
  gauge(
    'paystate_drifts',
    'Differences a platform poll found that no webhook had reported',
    (f) => f.counts.drifts,
  );
  gauge(
    'paystate_checks_due',
    `Payments whose reconciliation check is due or overdue now, counted up to ${CHECKS_DUE_CAP}: a figure that stays high means the reconciler is behind or down`,
    (f) => f.checksDue,
  );
  registerQueueGauges(registry, async () => (await figures()).queues);

  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    scrape = read();
    try {
      res.type(registry.contentType).send(await registry.metrics());
    } finally {
      scrape = undefined;
    }
  });
  return router;
}
