import { compileTrustProxy } from '../../src/http/client-address';
import { ConfigError, loadConfig, parseByteSize, parseDuration } from '../../src/config';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: 'development',
      port: 3000,
      redisUrl: 'redis://127.0.0.1:6379',
      webhook: { maxBodyBytes: 1024 * 1024, enqueueTimeoutMs: 2000 },
      ledger: {
        location: { kind: 'sqlite', path: './data/ledger.db' },
        rawEventRetentionMs: 400 * 86_400_000,
      },
      worker: { concurrency: 10, backlogConcurrency: 100 },
    });
    expect(config.webhook.keyRing.size).toBe(0);
  });

  it('runs the worker at WORKER_BACKLOG_CONCURRENCY behind a backlog, never below WORKER_CONCURRENCY', () => {
    expect(loadConfig({ WORKER_CONCURRENCY: '4', WORKER_BACKLOG_CONCURRENCY: '8' }).worker).toEqual({
      concurrency: 4,
      backlogConcurrency: 8,
    });
    // Raising WORKER_CONCURRENCY above the backlog default raises the backlog setting with it.
    expect(loadConfig({ WORKER_CONCURRENCY: '150' }).worker).toEqual({
      concurrency: 150,
      backlogConcurrency: 150,
    });
    // On PostgreSQL the worker keeps one concurrency unless told otherwise.
    expect(loadConfig({ LEDGER_URL: 'postgres://db/paystate' }).worker).toEqual({
      concurrency: 10,
      backlogConcurrency: 10,
    });
    expect(() => loadConfig({ WORKER_CONCURRENCY: '20', WORKER_BACKLOG_CONCURRENCY: '10' })).toThrow(
      /WORKER_BACKLOG_CONCURRENCY: must be at least WORKER_CONCURRENCY/,
    );
  });

  it('takes the PostgreSQL ledger when LEDGER_URL is set, with its pool, timeout and TLS settings', () => {
    const config = loadConfig({
      LEDGER_PATH: '/ignored/ledger.db',
      LEDGER_URL: 'postgres://paystate:secret@db.internal:5433/paystate',
      LEDGER_POOL_SIZE: '4',
      LEDGER_STATEMENT_TIMEOUT: '2s',
      LEDGER_TLS: 'require',
    });
    expect(config.ledger.location).toEqual({
      kind: 'postgres',
      url: 'postgres://paystate:secret@db.internal:5433/paystate',
      poolSize: 4,
      statementTimeoutMs: 2_000,
      tls: 'require',
      tlsCaFile: undefined,
    });
  });

  it('reads WEBHOOK_KEYS splitting each entry on its first colon only', () => {
    const config = loadConfig({ WEBHOOK_KEYS: 'k1:a+b/c=,k2:x:y==' });
    expect([...config.webhook.keyRing]).toEqual([
      ['k1', 'a+b/c='],
      ['k2', 'x:y=='],
    ]);
  });

  it('reads sizes and durations', () => {
    const config = loadConfig({
      WEBHOOK_MAX_BODY: '512kb',
      ENQUEUE_TIMEOUT: '500ms',
      RAW_EVENT_RETENTION: '30d',
    });
    expect(config.webhook.maxBodyBytes).toBe(512 * 1024);
    expect(config.webhook.enqueueTimeoutMs).toBe(500);
    expect(config.ledger.rawEventRetentionMs).toBe(30 * 86_400_000);
  });

  it('lists every bad variable at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', WEBHOOK_MAX_BODY: 'huge', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['PORT', 'WEBHOOK_MAX_BODY', 'LOG_LEVEL', 'REDIS_URL'])
      expect(problems).toContain(name);
  });

  it('reads TRUST_PROXY as hops, true, or addresses and subnets, and stops at start on anything else', () => {
    for (const spec of ['1', '2', 'true', 'loopback', '10.0.0.0/8, 192.168.1.1'])
      expect(loadConfig({ TRUST_PROXY: spec }).webhook.trustProxy).toBe(spec);
    expect(() => loadConfig({ TRUST_PROXY: 'my-load-balancer' })).toThrow(/TRUST_PROXY/);
    const oneHop = compileTrustProxy('1');
    expect([oneHop('10.0.0.1', 0), oneHop('10.0.0.2', 1)]).toEqual([true, false]);
    const subnet = compileTrustProxy('10.0.0.0/8');
    expect([subnet('10.1.2.3', 0), subnet('11.0.0.1', 0)]).toEqual([true, false]);
  });

  it('requires webhook keys and API tokens in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/WEBHOOK_KEYS[\s\S]*API_TOKENS/);
  });

  it('never echoes a secret from a bad WEBHOOK_KEYS', () => {
    expect(() => loadConfig({ WEBHOOK_KEYS: 'good:s3cr3t-value,broken-entry' })).toThrow(ConfigError);
    try {
      loadConfig({ WEBHOOK_KEYS: 'good:s3cr3t-value,broken-entry' });
    } catch (error) {
      expect((error as Error).message).toContain('WEBHOOK_KEYS');
      expect((error as Error).message).not.toContain('s3cr3t-value');
    }
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['15m', 900_000],
    ['6h', 21_600_000],
    ['7d', 604_800_000],
  ])('reads %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '10', '5 minutes', '-1s', '1.5h'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/duration/);
  });
});

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1048576],
    ['512kb', 524288],
    ['1mb', 1048576],
    ['2MB', 2097152],
  ])('reads %s', (text, bytes) => expect(parseByteSize(text)).toBe(bytes));

  it('rejects a size without a number', () => expect(() => parseByteSize('mb')).toThrow(/size/));
});
