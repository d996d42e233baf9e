import { RedisServer } from './redis-server';

/** One redis-server for the whole run; tests that take Redis down start their own. */
export default async function globalSetup(): Promise<void> {
  const redis = await RedisServer.start();
  process.env.TEST_REDIS_URL = redis.url;
  (globalThis as { __paystateRedis?: RedisServer }).__paystateRedis = redis;
}
