import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openLedger, type Ledger } from '../../src/ledger';
import { newLedgerLocation, type TestLedgerLocation } from './ledger';
import { freePort, RedisServer } from './redis-server';
import { waitFor } from './wait-for';

const ROOT = path.join(__dirname, '../..');

export const FAULT_KEY_ID = 'fault-key';
export const FAULT_SECRET = 'fault-secret';
export const FAULT_API_TOKEN = 'fault-token';

/** A child process started from source with tsx, its output kept for assertions and failure messages. */
export interface RunningProcess {
  name: string;
  child: ChildProcess;
  output(): string;
  /** Resolves the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Whether the process has exited. */
  done(): boolean;
}

/**
 * Runs a TypeScript entry point (a Procfile command from source, or a test script) as its own process, the
 * way test/e2e/processes.test.ts does: `node --import tsx <entry>`.
 */
export function runEntryPoint(
  name: string,
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
): RunningProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  let exitedYet = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitedYet = true;
      resolve(code);
    }),
  );
  return { name, child, output: () => output, exited, done: () => exitedYet };
}

export type StackEnvOptions = { port: number; redisUrl: string } & (
  | { ledgerPath: string }
  | {
      /** LEDGER_PATH or LEDGER_URL: a TestLedgerLocation's env. */
      ledgerEnv: Record<string, string>;
    }
);

/** The environment web and worker share, as a Procfile deployment gives it. */
export function stackEnv(options: StackEnvOptions): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'debug',
    PORT: String(options.port),
    REDIS_URL: options.redisUrl,
    ...('ledgerEnv' in options ? options.ledgerEnv : { LEDGER_PATH: options.ledgerPath }),
    WEBHOOK_KEYS: `${FAULT_KEY_ID}:${FAULT_SECRET}`,
    API_TOKENS: FAULT_API_TOKEN,
    SHUTDOWN_TIMEOUT: '10s',
    WORKER_CONCURRENCY: '10',
  };
}

function describeFailure(running: RunningProcess, what: string): Error {
  return new Error(`${running.name} ${what}; its output:\n${running.output().slice(-4000)}`);
}

/** Starts `web` (src/http/server.ts) and waits until `/readyz` answers 200. */
export async function startWeb(env: Record<string, string>, name = 'web'): Promise<RunningProcess> {
  const web = runEntryPoint(name, 'src/http/server.ts', env);
  const url = `http://127.0.0.1:${env.PORT}`;
  try {
    await waitFor(async () => {
      if (web.done()) throw describeFailure(web, 'exited before it was ready');
      const answer = await fetch(`${url}/readyz`).catch(() => undefined);
      return answer?.status === 200;
    }, 30_000);
  } catch (error) {
    web.child.kill('SIGKILL');
    throw error;
  }
  return web;
}

/** Starts `worker` (workers/status-worker.ts) and waits for its start line. */
export async function startWorker(env: Record<string, string>, name = 'worker'): Promise<RunningProcess> {
  const worker = runEntryPoint(name, 'workers/status-worker.ts', env);
  try {
    await waitFor(() => {
      if (worker.done()) throw describeFailure(worker, 'exited before it started');
      return worker.output().includes('status worker started');
    }, 30_000);
  } catch (error) {
    worker.child.kill('SIGKILL');
    throw error;
  }
  return worker;
}

/** Kills what is still running (SIGKILL) and waits for every exit. */
export async function killAll(processes: RunningProcess[]): Promise<void> {
  for (const running of processes.splice(0)) {
    if (!running.done()) running.child.kill('SIGKILL');
    await running.exited;
  }
}

/** The last lines of each process's output, for a failure message (routine per-event lines left out). */
export function outputTails(processes: readonly RunningProcess[], lines = 25): string {
  const routine = /status event processed|webhook accepted/;
  return processes
    .map((running) => {
      const kept = running
        .output()
        .split('\n')
        .filter((line) => line && !routine.test(line));
      return `--- ${running.name}${running.done() ? ' (exited)' : ''}\n${kept.slice(-lines).join('\n')}`;
    })
    .join('\n');
}

/** Runs `work`; when it fails, the error carries the processes' output tails. */
export async function explained<T>(processes: readonly RunningProcess[], work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${outputTails(processes)}`, { cause: error });
  }
}

/**
 * One private deployment for a fault test: its own Redis (AOF on), ledger (a file, or a database on the shared
 * PostgreSQL server), port and processes.
 */
export interface FaultStack {
  redis: RedisServer;
  port: number;
  url: string;
  ledgerLocation: TestLedgerLocation;
  env: Record<string, string>;
  /** Every process started for this stack, for failure messages and clean-up. */
  processes: RunningProcess[];
  /** Starts `web` / `worker` on this stack and keeps them for clean-up. */
  startWeb(name?: string): Promise<RunningProcess>;
  startWorker(name?: string): Promise<RunningProcess>;
  /** A ledger handle of the test's own, for polling and inspection. */
  ledger(): Promise<Ledger>;
  /** Kills what is left, closes the ledger, stops Redis, drops the database and removes the files. */
  close(): Promise<void>;
}

export async function openFaultStack(name: string): Promise<FaultStack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `paystate-fault-${name}-`));
  const redis = await RedisServer.start();
  const port = await freePort();
  const ledgerLocation = await newLedgerLocation(dir);
  const processes: RunningProcess[] = [];
  let ledger: Promise<Ledger> | undefined;
  const env = stackEnv({ port, redisUrl: redis.url, ledgerEnv: ledgerLocation.env });
  const kept = async (starting: Promise<RunningProcess>) => {
    const running = await starting;
    processes.push(running);
    return running;
  };
  return {
    redis,
    port,
    url: `http://127.0.0.1:${port}`,
    ledgerLocation,
    env,
    processes,
    startWeb: (name) => kept(startWeb(env, name)),
    startWorker: (name) => kept(startWorker(env, name)),
    ledger: () => (ledger ??= openLedger(ledgerLocation.location)),
    close: async () => {
      await killAll([...processes]);
      await (await ledger?.catch(() => undefined))?.close();
      await redis.stop();
      await ledgerLocation.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
