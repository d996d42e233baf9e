import { inspectLedger, inspectQueue, openQueueProbe, waitUntilSettled } from '../helpers/fault-inspect';
import { explained, openFaultStack } from '../helpers/fault-processes';
import { planTraffic, sendTraffic, totalDeliveries, watchConnections } from '../helpers/fault-traffic';
import { waitFor } from '../helpers/wait-for';

/** Event ids a web process logged as accepted: queued, with its 2xx about to be written. */
function acceptedEventIds(output: string): string[] {
  return [...output.matchAll(/webhook accepted .*?"eventId":"([^"]+)"/g)].map((match) => match[1]!);
}

describe('a deploy: SIGTERM to web and worker under load, new ones started once the old have exited', () => {
  it('cuts no request off, runs no job twice, and loses nothing', async () => {
    const stack = await openFaultStack('deploy');
    const watch = watchConnections(stack.port);
    const probe = openQueueProbe(stack.redis.url);
    try {
      const [oldWeb, oldWorker] = await Promise.all([stack.startWeb('web 1'), stack.startWorker('worker 1')]);
      const ledger = await stack.ledger();
      const plan = planTraffic({ payments: 60, prefix: 'deploy' });
      // Between the old web's exit and the new one listening, connections are refused: the platform retries.
      const traffic = sendTraffic(stack.url, plan, { concurrency: 8, retry: { attempts: 80, delayMs: 200 } });

      await explained(
        stack.processes,
        waitFor(() => traffic.progress.acked >= 80, 30_000),
      );
      const inFlightAtSigterm = watch.inFlight();
      const activeAtSigterm = (await probe.counts()).active!;
      const terminatedAt = Date.now();
      oldWeb.child.kill('SIGTERM');
      oldWorker.child.kill('SIGTERM');
      const [webExit, workerExit] = await Promise.all([oldWeb.exited, oldWorker.exited]);
      const exitedAt = Date.now();
      const [newWeb] = await Promise.all([stack.startWeb('web 2'), stack.startWorker('worker 2')]);
      const gapMs = Date.now() - exitedAt;

      const statuses = await traffic.done;
      await explained(stack.processes, waitUntilSettled(ledger, stack.redis.url, plan.events.length));

      const sent = totalDeliveries(statuses);
      const acceptedByOld = acceptedEventIds(oldWeb.output());
      const acceptedByNew = new Set(acceptedEventIds(newWeb.output()));
      const acceptedTwice = acceptedByOld.filter((eventId) => acceptedByNew.has(eventId));
      const found = await inspectLedger(ledger, plan);
      const queue = await inspectQueue(stack.redis.url);
      console.log(
        `fault totals — deploy (SIGTERM web + worker under load): ${JSON.stringify({
          eventsSent: sent.events,
          requests: watch.totals.requests,
          acked2xx: sent.acked,
          inFlightAtSigterm,
          activeJobsAtSigterm: activeAtSigterm,
          oldExitMs: exitedAt - terminatedAt,
          refusedWhileNoneListened: watch.totals.refused,
          noListenerMs: gapMs,
          resetBeforeReachingWeb: watch.totals.cutOff,
          acceptedByOldWeb: acceptedByOld.length,
          acceptedByNewWeb: acceptedByNew.size,
          acceptedButAnswerLost: acceptedTwice.length,
          answered5xx: sent.answered5xx,
          recorded: found.recorded,
          byOutcome: found.byOutcome,
          duplicatesRefused: found.duplicatesRefused,
          jobs: queue.counts,
          stalledEvents: queue.stalledEvents,
          jobsStartedTwice: queue.startedMoreThanOnce.length,
        })}`,
      );

      // The old processes finished what they held and exited cleanly, within SHUTDOWN_TIMEOUT.
      expect(webExit).toBe(0);
      expect(workerExit).toBe(0);
      expect(oldWeb.output()).toMatch(/shut down cleanly/);
      expect(oldWorker.output()).toMatch(/shut down cleanly/);
      // No request cut off: every request the receiver took was answered. Connections the kernel had queued
      // on the old listener when it closed are reset without reaching the receiver (nothing was queued for
      // them), like the ones refused while nothing listened; the sender retried them all to 2xx. An event
      // accepted by the old web whose answer was lost would have been sent again and accepted twice.
      expect(acceptedTwice).toEqual([]);
      expect(acceptedByOld.length + acceptedByNew.size).toBe(plan.events.length);
      expect(new Set(acceptedByOld).size).toBe(acceptedByOld.length);
      expect(watch.totals.cutOffCodes.every((code) => code === 'ECONNRESET')).toBe(true);
      expect(sent.answered5xx).toBe(0);
      expect(sent.answeredOther).toBe(0);
      expect(sent.acked).toBe(plan.events.length);
      // No job run twice: no stall, each job started once, each event brought to the ledger once.
      expect(queue.stalledEvents).toBe(0);
      expect(queue.stalledJobs).toEqual([]);
      expect(queue.startedMoreThanOnce).toEqual([]);
      expect(found.seenMoreThanOnce).toEqual([]);
      expect(found.missing).toEqual([]);
      expect(found.unexpected).toEqual([]);
      expect((found.byOutcome.applied ?? 0) + (found.byOutcome.superseded ?? 0)).toBe(plan.events.length);
      expect(found.changedTwice).toEqual([]);
      expect(found.wrongFinal).toEqual([]);
      expect(queue.counts.failed).toBe(0);
    } finally {
      watch.stop();
      await probe.close();
      await stack.close();
    }
  }, 120_000);
});
