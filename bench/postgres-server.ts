/**
 * The benchmarks' PostgreSQL: a private server (src/local/postgres.ts) started as production runs it — fsync on,
 * full-page writes on, synchronous_commit at its default (on) — with a fresh database per measured run, and the
 * CPU time of the server's processes, which the benchmark's own process.cpuUsage() does not see.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { postgresBinDir, startPostgres, type LocalPostgres } from '../src/local';
import { readProcessTicks, TICKS_PER_SECOND } from './proc-cpu';

/** Which ledgers a benchmark measures: BENCH_BACKENDS=sqlite,postgres (the default), or one of them. */
export type Backend = 'sqlite' | 'postgres';

export function benchBackends(): Backend[] {
  const listed = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of listed)
    if (name !== 'sqlite' && name !== 'postgres')
      throw new Error(`BENCH_BACKENDS: "${name}" is neither sqlite nor postgres`);
  if (listed.length === 0) throw new Error('BENCH_BACKENDS names no backend');
  return [...new Set(listed)] as Backend[];
}

export interface BenchPostgres {
  /** `postgres --version` and the fsync setting, e.g. "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1), fsync on". */
  readonly version: string;
  /** A new empty database on the server; its URL. */
  createDatabase(name: string): Promise<string>;
  /** CPU time (user + system) of the postmaster and all its processes so far, including exited backends, µs. */
  cpuUs(): number;
  stop(): Promise<void>;
}

/** CPU ticks of `root` and its children, running (own) or exited and reaped (children). */
function treeTicks(root: number): number {
  const ticks = (stat: ReturnType<typeof readProcessTicks>) => (stat ? stat.own + stat.children : 0);
  let total = ticks(readProcessTicks(root));
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = readProcessTicks(Number(entry));
    if (child?.ppid === root) total += ticks(child);
  }
  return total;
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const version = execFileSync(path.join(postgresBinDir(), 'postgres'), ['--version'], {
    encoding: 'utf8',
  }).trim();
  // BENCH_PG_FSYNC=off only to diagnose how much of a figure is the commit flush; the figures are taken with it on.
  const fsync = process.env.BENCH_PG_FSYNC !== 'off';
  const server: LocalPostgres = await startPostgres({ fsync });
  const postmaster = Number(fs.readFileSync(path.join(server.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    version: `${version}, fsync ${fsync ? 'on' : 'OFF'}`,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        await client.query(`create database "${name}"`);
      } finally {
        await client.end();
      }
      const url = new URL(server.url);
      url.pathname = `/${name}`;
      return url.toString();
    },
    cpuUs: () => (treeTicks(postmaster) * 1e6) / TICKS_PER_SECOND,
    stop: () => server.stop(),
  };
}
