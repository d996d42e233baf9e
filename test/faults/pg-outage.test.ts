import { openPgLedger, type Ledger } from '../../src/ledger';
import { startPostgres, type LocalPostgres } from '../../src/local';
import {
  countRecorded,
  inspectLedger,
  inspectQueue,
  openQueueProbe,
  waitUntilSettled,
} from '../helpers/fault-inspect';
import { explained, killAll, startWeb, startWorker, type RunningProcess } from '../helpers/fault-processes';
import { planTraffic, sendTraffic, totalDeliveries } from '../helpers/fault-traffic';
import { ledgerStackEnv, linesWith, startScheduler } from '../helpers/pg-processes';
import { freePort, RedisServer } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';

/*
 * Real processes (web, worker, scheduler) on a private PostgreSQL server that the test kills like a crash
 * (SIGKILL to the postmaster and its backends) and later shuts down fast (SIGINT) for a second, short outage.
 * PostgreSQL-specific: runs on PostgreSQL whatever TEST_LEDGER says.
 */

const PAUSED = 'ledger unavailable: workers paused until it answers';
const RESUMED = 'ledger answers again: workers resumed';

async function readyz(url: string): Promise<{ status: number; checks: Record<string, string> }> {
  const answer = await fetch(`${url}/readyz`);
  const json = (await answer.json()) as { checks: Record<string, string> };
  return { status: answer.status, checks: json.checks };
}

describe('PostgreSQL ledger outage under web, worker and scheduler processes', () => {
  it('a killed PostgreSQL makes /readyz 503 on the ledger, pauses the worker without a crash or a failed job, and every acknowledged delivery is applied exactly once after it is back', async () => {
    const postgres: LocalPostgres = await startPostgres({ fsync: false });
    const redis = await RedisServer.start();
    const processes: RunningProcess[] = [];
    let ledger: Ledger | undefined;
    const probe = openQueueProbe(redis.url);
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const env = ledgerStackEnv({
        port,
        redisUrl: redis.url,
        ledger: { LEDGER_URL: postgres.url },
        extra: {
          LEDGER_POOL_SIZE: '5',
          LEDGER_STATEMENT_TIMEOUT: '2s',
          SCHEDULER_PORT: String(await freePort()),
          RECONCILE_EVERY: '500ms',
        },
      });
      const [web, worker, scheduler] = await Promise.all([
        startWeb(env),
        startWorker(env),
        startScheduler(env),
      ]);
      processes.push(web, worker, scheduler);
      const pids = processes.map((running) => running.child.pid);
      ledger = await openPgLedger({ url: postgres.url, poolSize: 2, onConnectionError: () => {} });
      const inspect = ledger;

      const plan = planTraffic({ payments: 80, prefix: 'pg-outage' });
      const traffic = sendTraffic(url, plan, {
        concurrency: 8,
        retry: { attempts: 40, delayMs: 250 },
        paceMs: 15,
      });

      await explained(
        processes,
        waitFor(async () => (await countRecorded(inspect)) >= 60, 30_000),
      );
      const recordedAtKill = await countRecorded(inspect);
      const ackedAtKill = traffic.progress.acked;
      const killedAt = Date.now();
      await postgres.kill();

      // /readyz fails on the ledger alone (Redis answers); the worker pauses; the scheduler does not fall over.
      let down = { status: 0, checks: {} as Record<string, string> };
      await explained(
        processes,
        waitFor(async () => (down = await readyz(url)).status === 503, 10_000),
      );
      await explained(
        processes,
        waitFor(() => linesWith(worker, PAUSED) > 0, 15_000),
      );
      // Down long enough for several failed probes and for deliveries to pile up in the queue.
      await explained(
        processes,
        waitFor(() => traffic.progress.acked >= ackedAtKill + 60 && Date.now() - killedAt >= 4_000, 30_000),
      );
      const duringOutage = await probe.counts();
      const ackedDuringOutage = traffic.progress.acked - ackedAtKill;
      const readyDuringOutage = await readyz(url);
      const resumesWhileDown = linesWith(worker, RESUMED);
      await postgres.restart();
      const restartedAt = Date.now();
      const downMs = restartedAt - killedAt;

      await explained(
        processes,
        waitFor(() => linesWith(worker, RESUMED) > 0, 15_000),
      );
      const resumedAfterMs = Date.now() - restartedAt;

      // A second, short outage: fast shutdown (the server terminates its sessions) and start again at once.
      await explained(
        processes,
        waitFor(async () => (await countRecorded(inspect)) >= recordedAtKill + 120, 30_000),
      );
      await postgres.restart();

      const statuses = await traffic.done;
      await explained(processes, waitUntilSettled(inspect, redis.url, plan.events.length, 60_000));
      const settledAfterRestartMs = Date.now() - restartedAt;
      const readyAfter = await readyz(url);

      const sent = totalDeliveries(statuses);
      const found = await inspectLedger(inspect, plan);
      const queue = await inspectQueue(redis.url);
      console.log(
        `fault totals — PostgreSQL killed under web + worker + scheduler: ${JSON.stringify({
          eventsSent: sent.events,
          deliveries: sent.deliveries,
          acked2xx: sent.acked,
          answered5xx: sent.answered5xx,
          recordedAtKill,
          ackedAtKill,
          ackedDuringOutage,
          jobsDuringOutage: duringOutage,
          readyzDuringOutage: readyDuringOutage,
          postgresDownMs: downMs,
          workerResumedAfterRestartMs: resumedAfterMs,
          settledAfterRestartMs,
          resumesWhileDown,
          workerPauses: linesWith(worker, PAUSED),
          workerResumes: linesWith(worker, RESUMED),
          schedulerPauses: linesWith(scheduler, PAUSED),
          recorded: found.recorded,
          byOutcome: found.byOutcome,
          duplicatesRefused: found.duplicatesRefused,
          jobs: queue.counts,
        })}`,
      );

      // While PostgreSQL was down: /readyz 503 naming the ledger, Redis fine; the receiver kept acknowledging.
      expect(down.status).toBe(503);
      expect(down.checks.ledger).toMatch(/^failing/);
      expect(down.checks.redis).toBe('ok');
      expect(readyDuringOutage.status).toBe(503);
      expect(ackedDuringOutage).toBeGreaterThanOrEqual(60);
      expect(duringOutage.failed).toBe(0);
      expect((duringOutage.wait ?? 0) + (duringOutage.delayed ?? 0)).toBeGreaterThan(0);
      // No process fell over or restarted: same pids, none exited.
      expect(processes.map((running) => running.child.pid)).toEqual(pids);
      for (const running of processes) expect(running.done()).toBe(false);
      expect(worker.output()).not.toMatch(/status event failed for good|failed to start/);
      // The worker resumed on its own once the server was back (not before), and the web is ready again.
      expect(resumesWhileDown).toBe(0);
      expect(linesWith(worker, RESUMED)).toBeGreaterThanOrEqual(1);
      expect(readyAfter.status).toBe(200);
      // Every delivery acknowledged (all of them: the receiver needs only Redis), each applied exactly once.
      expect(sent.events).toBe(plan.events.length);
      expect(sent.acked).toBe(plan.events.length);
      expect(sent.answered5xx).toBe(0);
      expect(found.missing).toEqual([]);
      expect(found.unexpected).toEqual([]);
      expect(found.recorded).toBe(plan.events.length);
      expect((found.byOutcome.applied ?? 0) + (found.byOutcome.superseded ?? 0)).toBe(plan.events.length);
      expect(found.changedTwice).toEqual([]);
      expect(found.wrongFinal).toEqual([]);
      // No job was dropped into BullMQ's failed set.
      expect(queue.counts.failed).toBe(0);
    } finally {
      await killAll(processes);
      await probe.close();
      await ledger?.close().catch(() => {});
      await redis.stop();
      await postgres.stop();
    }
  }, 120_000);
});
