import { loadConfigOrExit } from '../src/config';
import { openSqliteLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { createRedisConnection, createStatusWorker } from '../src/queue';
import { exitOnSignals } from '../src/shutdown';

function main() {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, json: config.env === 'production' });
  const ledger = openSqliteLedger({ path: config.ledger.path, checkPolicy: config.reconcile.policy });
  const connection = createRedisConnection(config.redisUrl, { role: 'worker' });

  const worker = createStatusWorker({ connection, ledger, log, concurrency: config.worker.concurrency });

  log.info('status worker started', { concurrency: config.worker.concurrency, ledger: config.ledger.path });
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

main();
