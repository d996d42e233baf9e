import type { LocalPostgres } from '../../src/local';
import type { RedisServer } from './redis-server';

export default async function globalTeardown(): Promise<void> {
  const state = globalThis as { __paystateRedis?: RedisServer; __paystatePostgres?: LocalPostgres };
  await Promise.all([state.__paystateRedis?.stop(), state.__paystatePostgres?.stop()]);
}
