import { loadConfigOrExit } from '../src/config';
import { announcingWrites, describeLedger, openLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { createChangeAnnouncer, createRedisConnection, createStatusWorker } from '../src/queue';
import { exitOnSignals } from '../src/shutdown';

async function main() {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, json: config.env === 'production' });
  const ledger = await openLedger(config.ledger.location, {
    checkPolicy: config.reconcile.policy,
    onConnectionError: (error) => log.warn('ledger connection lost', { error: error.message }),
    backgroundCheckpointMs: 200,
  });
  const connection = createRedisConnection(config.redisUrl, { role: 'worker' });

  const worker = createStatusWorker({
    connection,
    ledger: announcingWrites(ledger, createChangeAnnouncer(connection)),
    log,
    concurrency: config.worker.concurrency,
    backlogConcurrency: config.worker.backlogConcurrency,
  });

  log.info('status worker started', {
    concurrency: config.worker.concurrency,
    backlogConcurrency: config.worker.backlogConcurrency,
    ledger: describeLedger(config.ledger.location),
  });
  exitOnSignals(
    async () => {
      // close() stops taking jobs and waits for the running ones to finish.
      await worker.close();
      await connection.quit();
      await ledger.close();
    },
    { timeoutMs: config.shutdownTimeoutMs, log },
  );
}

main().catch((error: Error) => {
  process.stderr.write(`status worker failed to start: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
