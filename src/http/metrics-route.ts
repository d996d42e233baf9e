import express, { type Router } from 'express';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Ledger } from '../ledger';

/**
 * Prometheus metrics. Ledger figures are read from the ledger at scrape time, so they count what every
 * process (web, worker, scheduler) wrote, not only this one.
 */
export function createMetricsRouter(ledger: Ledger): Router {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'paystate_' });
  new Gauge({
    name: 'paystate_ledger_events',
    help: 'Stored webhook/poll/replay events by outcome (unknown_code, invalid, failed need attention)',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      const counts = await ledger.counts();
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
      const counts = await ledger.counts();
      this.reset();
      for (const [stage, n] of Object.entries(counts.paymentsByStage)) this.set({ stage }, n);
    },
  });
  new Gauge({
    name: 'paystate_reversed_after_release',
    help: 'Payments whose goods were released and that were then refunded, cancelled or reversed',
    registers: [registry],
    async collect() {
      this.set((await ledger.counts()).reversedAfterRelease);
    },
  });

  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  return router;
}
