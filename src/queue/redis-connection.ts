import { Redis } from 'ioredis';

export interface RedisConnectionOptions {
  /**
   * Producers fail fast while Redis is unreachable (the receiver answers 503) instead of queueing commands
   * in memory; workers wait for Redis to come back.
   */
  role: 'producer' | 'worker';
}

export function createRedisConnection(url: string, options: RedisConnectionOptions): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: options.role === 'producer' ? 1 : null,
    enableOfflineQueue: options.role === 'worker',
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
}

/** Reads the settings that decide whether queued jobs survive memory pressure and restarts. */
export async function readRedisDurability(
  redis: Redis,
): Promise<{ maxmemoryPolicy: string | null; appendonly: string | null }> {
  const read = async (name: string) => {
    const reply = (await redis.call('CONFIG', 'GET', name)) as string[];
    return reply[1] ?? null;
  };
  return { maxmemoryPolicy: await read('maxmemory-policy'), appendonly: await read('appendonly') };
}
