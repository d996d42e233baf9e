import { loadConfig } from '../../src/config';
import {
  countRecorded,
  inspectLedger,
  inspectQueue,
  openQueueProbe,
  waitUntilSettled,
} from '../helpers/fault-inspect';
import { explained, openFaultStack } from '../helpers/fault-processes';
import { planTraffic, sendTraffic, totalDeliveries, watchConnections } from '../helpers/fault-traffic';
import { waitFor } from '../helpers/wait-for';

/*
 * Both scenarios end by waiting for BullMQ's stall detection (a job left active by a dead connection or a dead
 * worker comes back only once its 30 s lock has lapsed and a 30 s stalled check has seen it twice), so they run
 * side by side: each has its own Redis, ledger, port and processes.
 */
describe('crashes in the middle of a stream of deliveries', () => {
  it.concurrent(
    'Redis killed mid-burst and restarted: every acknowledged delivery is applied exactly once, and every 5xx one after the sender delivers it again',
    async () => {
      const stack = await openFaultStack('redis');
      const watch = watchConnections(stack.port);
      try {
        const [web, worker] = await Promise.all([stack.startWeb(), stack.startWorker()]);
        const ledger = await stack.ledger();
        const plan = planTraffic({ payments: 60, prefix: 'outage' });
        // The platform re-delivers for hours; 40 attempts 250 ms apart outlast this outage with room to spare.
        const traffic = sendTraffic(stack.url, plan, {
          concurrency: 12,
          retry: { attempts: 40, delayMs: 250 },
        });

        await explained(
          stack.processes,
          waitFor(() => traffic.progress.acked >= 90, 30_000),
        );
        await stack.redis.stopProcess();
        const killedAt = Date.now();
        const ackedBeforeKill = traffic.progress.acked;
        // Redis stays down until the receiver has refused a good number of deliveries.
        await explained(
          stack.processes,
          waitFor(() => watch.totals.answered5xx >= 60, 20_000),
        );
        await stack.redis.startProcess();
        const restartedAt = Date.now();

        const statuses = await traffic.done;
        await explained(stack.processes, waitUntilSettled(ledger, stack.redis.url, plan.events.length));
        const settledAfterRestartMs = Date.now() - restartedAt;

        const sent = totalDeliveries(statuses);
        const found = await inspectLedger(ledger, plan);
        const queue = await inspectQueue(stack.redis.url);
        console.log(
          `fault totals — Redis killed mid-burst: ${JSON.stringify({
            eventsSent: sent.events,
            deliveries: sent.deliveries,
            acked2xx: sent.acked,
            ackedBeforeKill,
            redisDownMs: restartedAt - killedAt,
            answered5xx: sent.answered5xx,
            eventsDeliveredAgain: sent.redeliveredEvents,
            noAnswer: sent.noAnswer,
            recorded: found.recorded,
            byOutcome: found.byOutcome,
            duplicatesRefused: found.duplicatesRefused,
            jobs: queue.counts,
            jobsStalled: queue.stalledJobs.length,
            settledAfterRestartMs,
          })}`,
        );

        // The sender: every event ends acknowledged; the only refusals were 5xx, each one delivered again.
        expect(sent.events).toBe(plan.events.length);
        expect(sent.acked).toBe(plan.events.length);
        expect(sent.answered5xx).toBeGreaterThan(0);
        expect(sent.answeredOther).toBe(0);
        expect(sent.noAnswer).toBe(0);
        expect(watch.totals.cutOff).toBe(0);
        for (const answers of statuses.values()) {
          expect(answers.slice(0, -1).every((status) => status >= 500)).toBe(true);
        }
        // The ledger: exactly the sent events, each recorded once and applied at most once, every payment
        // where its lifecycle ends. A job Redis handed out just before it died runs again only after stall
        // detection, and the dedupe gate refuses it if it had been applied already.
        expect(found.missing).toEqual([]);
        expect(found.unexpected).toEqual([]);
        expect(found.recorded).toBe(plan.events.length);
        expect((found.byOutcome.applied ?? 0) + (found.byOutcome.superseded ?? 0)).toBe(plan.events.length);
        expect(found.changedTwice).toEqual([]);
        expect(found.wrongFinal).toEqual([]);
        expect(queue.counts.failed).toBe(0);
        // Neither process fell over while Redis was away.
        expect(web.done()).toBe(false);
        expect(worker.done()).toBe(false);
      } finally {
        watch.stop();
        await stack.close();
      }
    },
    170_000,
  );

  it.concurrent(
    'the status worker killed with SIGKILL mid-stream: every event is applied exactly once after a new worker takes over',
    async () => {
      const stack = await openFaultStack('worker');
      const probe = openQueueProbe(stack.redis.url);
      try {
        const [, firstWorker] = await Promise.all([stack.startWeb(), stack.startWorker('worker 1')]);
        const ledger = await stack.ledger();
        const plan = planTraffic({ payments: 60, prefix: 'crash' });
        const traffic = sendTraffic(stack.url, plan, {
          concurrency: 12,
          retry: { attempts: 10, delayMs: 250 },
        });

        // Killed while it holds jobs: frozen first (SIGSTOP), so that the check and the kill see the same moment.
        await explained(
          stack.processes,
          waitFor(async () => {
            if ((await countRecorded(ledger)) < 60) return false;
            firstWorker.child.kill('SIGSTOP');
            if ((await probe.counts()).active! > 0) return true;
            firstWorker.child.kill('SIGCONT');
            return false;
          }, 30_000),
        );
        const activeAtKill = (await probe.counts()).active!;
        const killedAt = Date.now();
        firstWorker.child.kill('SIGKILL');
        expect(await firstWorker.exited).toBeNull();
        const recordedAtKill = await countRecorded(ledger);
        const ackedAtKill = traffic.progress.acked;
        const secondWorker = await stack.startWorker('worker 2');

        const statuses = await traffic.done;
        await explained(stack.processes, waitUntilSettled(ledger, stack.redis.url, plan.events.length));
        const settledAfterKillMs = Date.now() - killedAt;

        const sent = totalDeliveries(statuses);
        const found = await inspectLedger(ledger, plan);
        const queue = await inspectQueue(stack.redis.url);
        console.log(
          `fault totals — worker SIGKILLed mid-stream: ${JSON.stringify({
            eventsSent: sent.events,
            acked2xx: sent.acked,
            ackedAtKill,
            recordedAtKill,
            activeAtKill,
            recorded: found.recorded,
            byOutcome: found.byOutcome,
            duplicatesRefused: found.duplicatesRefused,
            jobs: queue.counts,
            jobsStalled: queue.stalledJobs.length,
            settledAfterKillMs,
          })}`,
        );

        // The kill landed mid-stream: the ledger and the sender were both part-way.
        expect(recordedAtKill).toBeLessThan(plan.events.length);
        expect(ackedAtKill).toBeLessThan(plan.events.length);
        expect(sent.acked).toBe(plan.events.length);
        expect(sent.noAnswer).toBe(0);
        // Every event recorded once, none applied twice, every payment in its lifecycle's final state.
        expect(found.missing).toEqual([]);
        expect(found.unexpected).toEqual([]);
        expect((found.byOutcome.applied ?? 0) + (found.byOutcome.superseded ?? 0)).toBe(plan.events.length);
        expect(found.changedTwice).toEqual([]);
        expect(found.wrongFinal).toEqual([]);
        // Only jobs the killed worker held can have run twice: at most its concurrency (its backlog setting,
        // when 100 or more jobs waited), each one stalled first. The jobs the killed worker held came back
        // through stall detection; those it had already applied were refused by the dedupe gate.
        const mostHeld = loadConfig(stack.env).worker.backlogConcurrency;
        expect(queue.stalledJobs.length).toBeGreaterThan(0);
        expect(found.seenMoreThanOnce.length).toBeLessThanOrEqual(mostHeld);
        expect(found.seenMoreThanOnce.every((eventId) => queue.stalledJobs.includes(eventId))).toBe(true);
        expect(queue.counts.failed).toBe(0);
        expect(secondWorker.done()).toBe(false);
      } finally {
        await probe.close();
        await stack.close();
      }
    },
    170_000,
  );
});
