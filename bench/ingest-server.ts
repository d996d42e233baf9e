/**
 * The server side of bench:ingest, run as its own process: `bare` is a plain Express endpoint reading the body
 * and answering 200; `receiver` is paystate's real web app (verify, parse, enqueue to Redis) on the same port.
 * Usage: node dist/bench/ingest-server.js <bare|receiver> <port> <redisUrl> <ledgerPath>
 */
import http from 'node:http';
import { once } from 'node:events';
import express from 'express';
import { createApp } from '../src/http/app';
import { openSqliteLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { parseKeyRing } from '../src/platform';
import { createRedisConnection, createStatusEventsQueue } from '../src/queue';

export const BENCH_KEY = { keyId: 'bench-key', secret: 'bench+secret/=' };

async function main() {
  const [mode, port, redisUrl, ledgerPath] = process.argv.slice(2);
  if (mode === 'bare') {
    const app = express();
    app.post('/webhooks', express.raw({ type: () => true, limit: 1024 * 1024 }), (_req, res) => {
      res.status(200).json({ received: 1 });
    });
    app.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
    return;
  }
  // The default level, as deployed (a line per accepted webhook is at debug).
  const log = createLogger({ level: 'info', json: true });
  const redis = createRedisConnection(redisUrl!, { role: 'producer' });
  const queue = createStatusEventsQueue(redis);
  const ledger = openSqliteLedger({ path: ledgerPath! });
  const app = createApp({
    keyRing: parseKeyRing(`${BENCH_KEY.keyId}:${BENCH_KEY.secret}`),
    maxBodyBytes: 1024 * 1024,
    enqueueTimeoutMs: 2_000,
    failureLimit: 20,
    failureWindowMs: 60_000,
    apiTokens: ['bench'],
    releaseOn: 'captured',
    defaultFulfilmentDelayMs: 900_000,
    queue,
    ledger,
    readiness: {},
    log,
  });
  if (redis.status !== 'ready') await once(redis, 'ready');
  http.createServer(app).listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
