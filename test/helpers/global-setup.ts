import { startPostgres, type LocalPostgres } from '../../src/local';
import { RedisServer } from './redis-server';

/**
 * One redis-server and one PostgreSQL server for the whole run; tests that take a server down start their own.
 * TEST_POSTGRES_URL is the PostgreSQL server's admin URL (superuser); test/helpers/postgres.ts makes a database
 * per test file on it. When TEST_POSTGRES_URL is already set, that server is used and none is started.
 */
export default async function globalSetup(): Promise<void> {
  const [redis, postgres] = await Promise.all([
    RedisServer.start(),
    process.env.TEST_POSTGRES_URL ? undefined : startPostgres({ fsync: false }),
  ]);
  process.env.TEST_REDIS_URL = redis.url;
  const state = globalThis as { __paystateRedis?: RedisServer; __paystatePostgres?: LocalPostgres };
  state.__paystateRedis = redis;
  if (postgres) {
    process.env.TEST_POSTGRES_URL = postgres.url;
    state.__paystatePostgres = postgres;
  }
}
