import http from 'node:http';
import { once } from 'node:events';
import { Queue } from 'bullmq';
import { loadConfigOrExit } from '../config';
import { announcingWrites, openLedger } from '../ledger';
import { createLogger } from '../log';
import {
  createRedisConnection,
  createStatusEventsQueue,
  PAYMENT_POLLS_QUEUE,
  readRedisDurability,
  RECONCILE_SWEEPS_QUEUE,
  createChangeAnnouncer,
  subscribeToChanges,
} from '../queue';
import { exitOnSignals } from '../shutdown';
import { createApp } from './app';
import { answerClientErrorsWithJson } from './client-errors';

async function main() {
  const config = loadConfigOrExit();
  const log = createLogger({ level: config.logLevel, json: config.env === 'production' });
  if (config.webhook.keyRing.size === 0)
    log.warn('WEBHOOK_KEYS is empty: every delivery will be refused with 401');
  if (config.api.tokens.length === 0) log.warn('API_TOKENS is empty: every /v1 request will be refused');
  if (!config.admin.token)
    log.warn('ADMIN_TOKEN is not set: the queue board at /admin/queues is not mounted');

  const redis = createRedisConnection(config.redisUrl, { role: 'producer' });
  redis.on('error', (error) => log.warn('redis connection error', { error: error.message }));
  await checkRedisDurability(redis, config.env === 'production', log);

  const queue = createStatusEventsQueue(redis);
  // The scheduler's queues, for the board and the queue metrics only: this process adds no jobs to them.
  const adminQueues = [PAYMENT_POLLS_QUEUE, RECONCILE_SWEEPS_QUEUE].map(
    (name) => new Queue(name, { connection: redis }),
  );
  for (const each of [queue, ...adminQueues])
    each.on('error', (error) => log.warn('queue error', { queue: each.name, error: error.message }));
  const ledger = announcingWrites(
    await openLedger(config.ledger.location, {
      checkPolicy: config.reconcile.policy,
      onConnectionError: (error) => log.warn('ledger connection lost', { error: error.message }),
      // Metrics scrapes count whole tables: off the thread that answers webhooks.
      countsOffThread: true,
    }),
    createChangeAnnouncer(redis),
  );

  // A connection of its own: a subscribed connection can run no other command.
  const subscriber = createRedisConnection(config.redisUrl, { role: 'worker' });
  subscriber.on('error', (error) => log.warn('redis subscriber error', { error: error.message }));
  const changeSignal = subscribeToChanges(subscriber, (error) =>
    log.warn('change announcements not subscribed; long-polls fall back to polling the ledger', {
      error: error.message,
    }),
  );

  const app = createApp({
    keyRing: config.webhook.keyRing,
    maxBodyBytes: config.webhook.maxBodyBytes,
    enqueueTimeoutMs: config.webhook.enqueueTimeoutMs,
    failureLimit: config.webhook.failureLimit,
    failureWindowMs: config.webhook.failureWindowMs,
    trustProxy: config.webhook.trustProxy,
    apiTokens: config.api.tokens,
    releaseOn: config.fulfilment.releaseOn,
    defaultFulfilmentDelayMs: config.fulfilment.defaultDelayMs,
    queue,
    adminQueues,
    adminToken: config.admin.token,
    ledger,
    changeSignal,
    readiness: { redis: async () => void (await redis.ping()), ledger: () => ledger.ping() },
    log,
  });
  const server = http.createServer(app).listen(config.port);
  answerClientErrorsWithJson(server);
  await once(server, 'listening');
  log.info('web listening', { port: config.port, keyIds: [...config.webhook.keyRing.keys()] });

  exitOnSignals(
    async () => {
      // Stop accepting, answer waiting long-polls now, let in-flight deliveries finish their enqueue, then
      // release Redis and the ledger.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await changeSignal.close();
      server.closeIdleConnections();
      await closed;
      await Promise.all([queue, ...adminQueues].map((each) => each.close()));
      await redis.quit();
      await ledger.close();
    },
    { timeoutMs: config.shutdownTimeoutMs, log },
  );
}

async function checkRedisDurability(
  redis: ReturnType<typeof createRedisConnection>,
  production: boolean,
  log: ReturnType<typeof createLogger>,
) {
  let durability;
  try {
    if (redis.status !== 'ready') await once(redis, 'ready', { signal: AbortSignal.timeout(5_000) });
    durability = await readRedisDurability(redis);
  } catch (error) {
    log.warn('could not read Redis settings (CONFIG GET refused or Redis down)', {
      error: (error as Error).message,
    });
    return;
  }
  log.info('redis persistence', {
    appendonly: durability.appendonly,
    maxmemoryPolicy: durability.maxmemoryPolicy,
  });
  if (durability.maxmemoryPolicy !== 'noeviction') {
    const message = `Redis maxmemory-policy is ${durability.maxmemoryPolicy}: queued events can be evicted under memory pressure; set it to noeviction`;
    if (production) {
      log.error(message);
      process.exit(1);
    }
    log.warn(message);
  }
}

main().catch((error: Error) => {
  process.stderr.write(`web failed to start: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
