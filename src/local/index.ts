/** Helpers for running paystate's pieces on one machine: the demo, the benchmarks and the tests use them. */

export { freePort, waitForPort } from './ports';
export { startPostgres, postgresBinDir, type LocalPostgres, type StartPostgresOptions } from './postgres';

/** A private redis-server as production runs it (noeviction, AOF unless turned off), on loopback only. */
export function redisServerArgs(options: { port: number; dir: string; appendonly?: boolean }): string[] {
  return [
    '--port',
    String(options.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    options.dir,
    '--appendonly',
    options.appendonly === false ? 'no' : 'yes',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
  ];
}
