import fs from 'node:fs';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import winston from 'winston';
import { ConfigError, loadConfig, type Config } from '../config';
import { describeLedger, openLedger, type Ledger } from '../ledger';
import { createLogger, type Logger } from '../log';
import { createRedisConnection, createStatusEventsQueue, type StatusEventJob } from '../queue';
import { CliError } from './output';

/** How long the CLI waits for Redis before it says Redis is unreachable. */
const REDIS_READY_TIMEOUT_MS = 3_000;

const PLATFORM_VARIABLES = ['PLATFORM_MERCHANT_ID', 'PLATFORM_API_KEY_ID', 'PLATFORM_API_SECRET'] as const;

/** What every command reaches for: config, ledger and Redis, each opened on first use and closed at exit. */
export interface CliContext {
  readonly verbose: boolean;
  readonly log: Logger;
  config(): Config;
  /** The Server API credentials, or a one-line error naming the missing variables. */
  platformCredentials(): NonNullable<Config['platform']['credentials']>;
  ledger(): Promise<Ledger>;
  statusQueue(): Promise<Queue<StatusEventJob>>;
  close(): Promise<void>;
}

/** The Redis URL without a password, for messages. */
export function redisLabel(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return 'the configured REDIS_URL';
  }
}

async function connectRedis(url: string, log: Logger): Promise<Redis> {
  // A producer connection fails fast instead of queueing commands while Redis is away.
  const redis = createRedisConnection(url, { role: 'producer' });
  // Later connection errors reach the command as failed calls; this only keeps ioredis from printing them.
  redis.on('error', (error: Error) => log.debug('redis error', { error: error.message }));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer within ${REDIS_READY_TIMEOUT_MS} ms`)),
        REDIS_READY_TIMEOUT_MS,
      );
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      redis.once('error', (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } catch (error) {
    redis.disconnect();
    throw new CliError(`cannot reach Redis at ${redisLabel(url)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return redis;
}

/** Logs go to stderr so that stdout stays the command's answer (and valid JSON with --json). */
function stderrLogger(verbose: boolean): Logger {
  const log = createLogger({ level: verbose ? 'debug' : 'error', json: false });
  log.clear();
  log.add(new winston.transports.Console({ stderrLevels: Object.keys(log.levels) }));
  return log;
}

export function createCliContext(options: { verbose: boolean }): CliContext {
  const log = stderrLogger(options.verbose);
  let config: Config | undefined;
  let ledger: Promise<Ledger> | undefined;
  let redis: Promise<Redis> | undefined;
  let queue: Promise<Queue<StatusEventJob>> | undefined;

  const context: CliContext = {
    verbose: options.verbose,
    log,
    config() {
      if (config) return config;
      try {
        config = loadConfig(process.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        throw new CliError(`invalid configuration: ${error.problems.join('; ')}`, { cause: error });
      }
      return config;
    },
    platformCredentials() {
      const credentials = context.config().platform.credentials;
      if (credentials) return credentials;
      const missing = PLATFORM_VARIABLES.filter((name) => !process.env[name]);
      throw new CliError(`no platform credentials: set ${missing.join(', ')}`);
    },
    ledger() {
      ledger ??= (async () => {
        const location = context.config().ledger.location;
        // Opening would create an empty ledger: a mistyped LEDGER_PATH must not look like an empty one.
        if (location.kind === 'sqlite' && !fs.existsSync(location.path))
          throw new CliError(
            `no ledger at ${location.path} (set LEDGER_PATH to the ledger file, or LEDGER_URL)`,
          );
        try {
          return await openLedger(location, { checkPolicy: context.config().reconcile.policy });
        } catch (error) {
          throw new CliError(
            `cannot open the ledger (${describeLedger(location)}): ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
      })();
      return ledger;
    },
    statusQueue() {
      queue ??= (async () => {
        redis = connectRedis(context.config().redisUrl, log);
        const statusQueue = createStatusEventsQueue(await redis);
        statusQueue.on('error', (error) => log.debug('queue error', { error: error.message }));
        return statusQueue;
      })();
      return queue;
    },
    async close() {
      // A connection that failed was reported by the command already; closing must still reach the ledger.
      const settled = async <T>(promise: Promise<T> | undefined) =>
        promise?.then(
          (value) => value,
          () => undefined,
        );
      const openQueue = await settled(queue);
      if (openQueue) await openQueue.close().catch((error: Error) => log.debug('queue close', { error }));
      const openRedis = await settled(redis);
      openRedis?.disconnect();
      await (await settled(ledger))?.close();
    },
  };
  return context;
}
