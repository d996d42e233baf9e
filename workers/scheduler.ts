import { once } from 'node:events';
import express from 'express';
import { loadConfigOrExit } from '../src/config';
import { createHealthRouter } from '../src/http/health-route';
import { announcingWrites, openLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { createPlatformClient } from '../src/platform';
import { createChangeAnnouncer, createRedisConnection, startReconciler } from '../src/queue';
import { exitOnSignals } from '../src/shutdown';
import { startPlatformSimulator } from '../src/simulator';

const RAW_BODY_PURGE_EVERY_MS = 3_600_000;

async function main() {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, json: config.env === 'production' });
  const ledger = await openLedger(config.ledger.location, {
    checkPolicy: config.reconcile.policy,
    onConnectionError: (error) => log.warn('ledger connection lost', { error: error.message }),
  });

  let credentials = config.platform.credentials;
  let platformUrl = config.platform.url;
  const simulator = credentials
    ? undefined
    : await startPlatformSimulator({
        merchantId: 'SIMULATED',
        apiKeyId: 'simulated-key',
        apiSecret: 'simulated-secret',
      });
  if (simulator) {
    credentials = { merchantId: 'SIMULATED', apiKeyId: 'simulated-key', apiSecret: 'simulated-secret' };
    platformUrl = simulator.url;
    log.warn('no platform credentials: the reconciler runs against the built-in platform simulator', {
      simulator: simulator.url,
    });
  }
  const platform = createPlatformClient({
    url: platformUrl,
    ...credentials!,
    timeoutMs: config.platform.timeoutMs,
    maxRps: config.platform.maxRps,
    log,
  });

  const probe = await platform.testConnection();
  if (probe.ok)
    log.info('platform credentials accepted', { platform: platformUrl, merchantId: credentials!.merchantId });
  else {
    log.error('platform connection probe failed', {
      platform: platformUrl,
      reason: probe.reason,
      status: probe.status,
    });
    if (config.env === 'production' && probe.reason === 'authentication') process.exit(1);
  }

  const connection = createRedisConnection(config.redisUrl, { role: 'worker' });
  const reconciler = await startReconciler({
    connection,
    ledger: announcingWrites(ledger, createChangeAnnouncer(connection)),
    platform,
    log,
    everyMs: config.reconcile.everyMs,
    sweepCap: config.reconcile.sweepCap,
    maxRps: config.platform.maxRps,
  });

  const purge = setInterval(() => {
    ledger
      .purgeRawBodies(Date.now() - config.ledger.rawEventRetentionMs)
      .then((cleared) => cleared && log.info('raw event bodies past retention cleared', { cleared }))
      .catch((error: Error) => log.error('raw body purge failed', { error: error.message }));
  }, RAW_BODY_PURGE_EVERY_MS);
  purge.unref();

  const app = express();
  app.use(
    createHealthRouter(
      {
        redis: async () => void (await connection.ping()),
        ledger: () => ledger.ping(),
        platform: async () => {
          const result = await platform.testConnection();
          if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
        },
      },
      config.platform.timeoutMs,
    ),
  );
  const server = app.listen(config.reconcile.schedulerPort);
  await once(server, 'listening');
  log.info('scheduler started', {
    everyMs: config.reconcile.everyMs,
    healthPort: config.reconcile.schedulerPort,
  });

  exitOnSignals(
    async () => {
      clearInterval(purge);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await reconciler.close();
      await connection.quit();
      platform.close();
      await simulator?.close();
      await ledger.close();
    },
    { timeoutMs: config.shutdownTimeoutMs, log },
  );
}

main().catch((error: Error) => {
  process.stderr.write(`scheduler failed to start: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
