import { loadConfigOrExit } from '../src/config';
import { openSqliteLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { createRedisConnection, createStatusWorker } from '../src/queue';
import { exitOnSignals } from '../src/shutdown';

const RAW_BODY_PURGE_EVERY_MS = 3_600_000;

function main() {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, json: config.env === 'production' });
  const ledger = openSqliteLedger({ path: config.ledger.path });
  const connection = createRedisConnection(config.redisUrl, { role: 'worker' });

  const worker = createStatusWorker({ connection, ledger, log, concurrency: config.worker.concurrency });

  const purge = setInterval(() => {
    ledger
      .purgeRawBodies(Date.now() - config.ledger.rawEventRetentionMs)
      .then((cleared) => cleared && log.info('raw event bodies past retention cleared', { cleared }))
      .catch((error: Error) => log.error('raw body purge failed', { error: error.message }));
  }, RAW_BODY_PURGE_EVERY_MS);
  purge.unref();

  log.info('status worker started', { concurrency: config.worker.concurrency, ledger: config.ledger.path });
  exitOnSignals(
    async () => {
      clearInterval(purge);
      // close() stops taking jobs and waits for the running ones to finish.
      await worker.close();
      await connection.quit();
      await ledger.close();
    },
    { timeoutMs: config.shutdownTimeoutMs, log },
  );
}

main();
