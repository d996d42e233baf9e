import { z } from 'zod';
import { DEFAULT_CHECK_POLICY, type CheckPolicy } from './ledger/check-schedule';
import type { LedgerLocation } from './ledger/open';
import { parseKeyRing, type KeyRing } from './platform/webhook-signature';
import { compileTrustProxy } from './http/client-address';

/**
 * Jobs the status worker runs at once while it keeps up, and while a backlog waits (src/queue/backlog-concurrency.ts).
 * At a steady 1,000 deliveries/s, 50 doubled the tail from delivery to readable against 10 (bench:e2e p99 ~40 ms
 * at 10, ~75 ms at 50); draining a backlog, 100 is ~1.5× faster than 10 on SQLite, because the applies of one
 * event-loop turn share one commit.
 */
export const DEFAULT_WORKER_CONCURRENCY = 10;
export const DEFAULT_WORKER_BACKLOG_CONCURRENCY = 100;

const DURATION_UNITS_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const BYTE_UNITS = { b: 1, kb: 1024, mb: 1024 * 1024 } as const;

/** Parses `500ms`, `90s`, `15m`, `6h`, `7d` into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a duration such as 500ms, 90s, 15m, 6h or 7d`);
  return Number(match[1]) * DURATION_UNITS_MS[match[2] as keyof typeof DURATION_UNITS_MS];
}

/** Parses `1m,5m,15m` into milliseconds, in order. */
export function parseDurationList(text: string): number[] {
  const list = text.split(',').map(parseDuration);
  if (!list.length) throw new Error('expected a comma-separated list of durations');
  return list;
}

/** Parses `1048576`, `512kb`, `1mb` into bytes. */
export function parseByteSize(text: string): number {
  const match = /^(\d+)\s*(b|kb|mb)?$/i.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a size such as 1048576, 512kb or 1mb`);
  const unit = (match[2]?.toLowerCase() ?? 'b') as keyof typeof BYTE_UNITS;
  return Number(match[1]) * BYTE_UNITS[unit];
}

function converted<T>(parse: (text: string) => T) {
  return z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
}

const zDuration = converted(parseDuration);
const zPositiveInt = z.coerce.number().int().positive();

const zEnv = z.object({
  NODE_ENV: z.enum(['production', 'development', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  WEBHOOK_KEYS: converted(parseKeyRing).optional(),
  WEBHOOK_MAX_BODY: converted(parseByteSize).default(1024 * 1024),
  WEBHOOK_FAILURE_LIMIT: zPositiveInt.default(20),
  WEBHOOK_FAILURE_WINDOW: zDuration.default(60_000),
  ENQUEUE_TIMEOUT: zDuration.default(2_000),
  // Checked here so that a typo stops the process at start instead of at its first request.
  TRUST_PROXY: converted((text) => (compileTrustProxy(text), text)).optional(),
  SHUTDOWN_TIMEOUT: zDuration.default(10_000),
  LEDGER_PATH: z.string().min(1).default('./data/ledger.db'),
  LEDGER_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  LEDGER_POOL_SIZE: zPositiveInt.default(10),
  LEDGER_STATEMENT_TIMEOUT: zDuration.default(5_000),
  LEDGER_TLS: z.enum(['off', 'require', 'verify']).default('off'),
  LEDGER_TLS_CA_FILE: z.string().min(1).optional(),
  RAW_EVENT_RETENTION: zDuration.default(400 * 86_400_000),
  WORKER_CONCURRENCY: zPositiveInt.default(DEFAULT_WORKER_CONCURRENCY),
  WORKER_BACKLOG_CONCURRENCY: zPositiveInt.optional(),
  DEFAULT_FULFILMENT_DELAY: zDuration.default(15 * 60_000),
  RELEASE_ON: z.enum(['captured', 'authorized']).default('captured'),
  PLATFORM_URL: z.url({ protocol: /^https?$/ }).default('https://payment.preprod.payone.com'),
  PLATFORM_MERCHANT_ID: z.string().min(1).optional(),
  PLATFORM_API_KEY_ID: z.string().min(1).optional(),
  PLATFORM_API_SECRET: z.string().min(1).optional(),
  PLATFORM_MAX_RPS: zPositiveInt.default(10),
  PLATFORM_TIMEOUT: zDuration.default(10_000),
  RECONCILE_EVERY: zDuration.default(60_000),
  RECONCILE_GIVE_UP: zDuration.default(7 * 86_400_000),
  RECONCILE_LADDER: converted(parseDurationList).default([...DEFAULT_CHECK_POLICY.ladderMs]),
  RECONCILE_FAST_LADDER: converted(parseDurationList).default([...DEFAULT_CHECK_POLICY.fastLadderMs]),
  RECONCILE_LEAD: zDuration.default(DEFAULT_CHECK_POLICY.leadMs),
  RECONCILE_SWEEP_CAP: zPositiveInt.default(500),
  SCHEDULER_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
  API_TOKENS: z
    .string()
    .transform((text) =>
      text
        .split(',')
        .map((token) => token.trim())
        .filter(Boolean),
    )
    .optional(),
  ADMIN_TOKEN: z.string().min(1).optional(),
});

export interface Config {
  env: 'production' | 'development' | 'test';
  port: number;
  redisUrl: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  webhook: {
    keyRing: KeyRing;
    maxBodyBytes: number;
    /** Failed verifications per client address before it is answered 429. */
    failureLimit: number;
    failureWindowMs: number;
    /** How long a delivery waits for Redis to acknowledge the job before answering 503. */
    enqueueTimeoutMs: number;
    /** Proxies trusted for the client's address (`1` hop, `loopback`, addresses or subnets), for the throttle. */
    trustProxy: string | undefined;
  };
  shutdownTimeoutMs: number;
  /** `location`: PostgreSQL when LEDGER_URL is set, else the SQLite file at LEDGER_PATH. */
  ledger: { location: LedgerLocation; rawEventRetentionMs: number };
  /**
   * `backlogConcurrency`: jobs at once while 100 or more wait; equal to `concurrency` (PostgreSQL's default)
   * turns that off.
   */
  worker: { concurrency: number; backlogConcurrency: number };
  api: { tokens: readonly string[] };
  /**
   * Password (HTTP basic, any user) or bearer token of the queue board at `/admin/queues`; without one the
   * board is not mounted.
   */
  admin: { token: string | undefined };
  platform: {
    url: string;
    /** Null outside production when no credentials are set: the scheduler then runs against the simulator. */
    credentials: { merchantId: string; apiKeyId: string; apiSecret: string } | null;
    maxRps: number;
    timeoutMs: number;
  };
  reconcile: { everyMs: number; sweepCap: number; policy: CheckPolicy; schedulerPort: number };
  fulfilment: {
    /** fulfilmentDueAt when a registration gives none: registration time plus this. */
    defaultDelayMs: number;
    /** Release goods on a capture (9, 95) or already on an authorisation (5, 56). */
    releaseOn: 'captured' | 'authorized';
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  }
}

/** Parses the environment once; lists every bad or missing variable together. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = zEnv.safeParse(present);
  if (!parsed.success) {
    // Messages name the variable and the problem; the values (secrets among them) are never echoed.
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.NODE_ENV === 'production' && !e.WEBHOOK_KEYS) problems.push('WEBHOOK_KEYS: required in production');
  if (e.NODE_ENV === 'production' && !e.API_TOKENS?.length)
    problems.push('API_TOKENS: required in production');
  if (e.NODE_ENV === 'production' && !e.ADMIN_TOKEN) problems.push('ADMIN_TOKEN: required in production');
  if (e.WORKER_BACKLOG_CONCURRENCY !== undefined && e.WORKER_BACKLOG_CONCURRENCY < e.WORKER_CONCURRENCY)
    problems.push('WORKER_BACKLOG_CONCURRENCY: must be at least WORKER_CONCURRENCY');
  if (problems.length) throw new ConfigError(problems);
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    webhook: {
      keyRing: e.WEBHOOK_KEYS ?? new Map(),
      maxBodyBytes: e.WEBHOOK_MAX_BODY,
      failureLimit: e.WEBHOOK_FAILURE_LIMIT,
      failureWindowMs: e.WEBHOOK_FAILURE_WINDOW,
      enqueueTimeoutMs: e.ENQUEUE_TIMEOUT,
      trustProxy: e.TRUST_PROXY,
    },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    ledger: {
      location: e.LEDGER_URL
        ? {
            kind: 'postgres',
            url: e.LEDGER_URL,
            poolSize: e.LEDGER_POOL_SIZE,
            statementTimeoutMs: e.LEDGER_STATEMENT_TIMEOUT,
            tls: e.LEDGER_TLS,
            tlsCaFile: e.LEDGER_TLS_CA_FILE,
          }
        : { kind: 'sqlite', path: e.LEDGER_PATH },
      rawEventRetentionMs: e.RAW_EVENT_RETENTION,
    },
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      // On PostgreSQL more jobs in flight only wait longer on each payment's lock and the feed lock (bench:worker).
      backlogConcurrency:
        e.WORKER_BACKLOG_CONCURRENCY ??
        (e.LEDGER_URL
          ? e.WORKER_CONCURRENCY
          : Math.max(DEFAULT_WORKER_BACKLOG_CONCURRENCY, e.WORKER_CONCURRENCY)),
    },
    api: { tokens: e.API_TOKENS ?? [] },
    admin: { token: e.ADMIN_TOKEN },
    fulfilment: { defaultDelayMs: e.DEFAULT_FULFILMENT_DELAY, releaseOn: e.RELEASE_ON },
    platform: {
      url: e.PLATFORM_URL,
      credentials:
        e.PLATFORM_MERCHANT_ID && e.PLATFORM_API_KEY_ID && e.PLATFORM_API_SECRET
          ? {
              merchantId: e.PLATFORM_MERCHANT_ID,
              apiKeyId: e.PLATFORM_API_KEY_ID,
              apiSecret: e.PLATFORM_API_SECRET,
            }
          : null,
      maxRps: e.PLATFORM_MAX_RPS,
      timeoutMs: e.PLATFORM_TIMEOUT,
    },
    reconcile: {
      everyMs: e.RECONCILE_EVERY,
      sweepCap: e.RECONCILE_SWEEP_CAP,
      schedulerPort: e.SCHEDULER_PORT,
      policy: {
        ...DEFAULT_CHECK_POLICY,
        ladderMs: e.RECONCILE_LADDER,
        fastLadderMs: e.RECONCILE_FAST_LADDER,
        leadMs: e.RECONCILE_LEAD,
        giveUpMs: e.RECONCILE_GIVE_UP,
      },
    },
  };
}

/** For entry points: parse or print every problem and exit 1. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}
