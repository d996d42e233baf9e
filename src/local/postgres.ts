import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports';

/**
 * A private PostgreSQL server in a temporary data directory, on loopback only, for the tests, the benchmarks and
 * CI: Debian's `postgresql` package (scripts/ensure-postgres.sh installs it) provides the binaries; nothing of
 * the package's own cluster or service is used.
 */

export interface StartPostgresOptions {
  /** TCP port on 127.0.0.1; a free one when left out. */
  port?: number;
  /** Data directory, created by initdb (must not exist or be empty); a new temporary one when left out. */
  dir?: string;
  /**
   * false: fsync and full-page writes off, for tests. Commits still reach the OS before they are acknowledged, so
   * a kill() loses nothing acknowledged (a host crash would). synchronous_commit stays on: off lost ~15% of the
   * acknowledged commits at a kill() and was no faster once fsync is off.
   */
  fsync?: boolean;
}

export interface LocalPostgres {
  /** postgres://postgres@127.0.0.1:<port>/paystate (user postgres, trust authentication, no password). */
  readonly url: string;
  readonly port: number;
  /** The data directory; the Unix socket is here too. */
  readonly dir: string;
  /** Fast shutdown (SIGINT), then removes the data directory. */
  stop(): Promise<void>;
  /** SIGKILL to the server and all its processes, as a crash would; the data directory stays for restart(). */
  kill(): Promise<void>;
  /** Stops the server if it runs (fast shutdown, or after kill()) and starts it again on the same port and data. */
  restart(): Promise<void>;
}

const DATABASE = 'paystate';
const SUPERUSER = 'postgres';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** The directory of initdb and postgres: $POSTGRES_BIN_DIR, else the newest /usr/lib/postgresql/N/bin, else PATH. */
export function postgresBinDir(): string {
  const hasServer = (dir: string) =>
    fs.existsSync(path.join(dir, 'postgres')) && fs.existsSync(path.join(dir, 'initdb'));
  const fromEnv = process.env.POSTGRES_BIN_DIR;
  if (fromEnv) {
    if (!hasServer(fromEnv)) throw new Error(`POSTGRES_BIN_DIR=${fromEnv} has no postgres and initdb`);
    return fromEnv;
  }
  const debian = '/usr/lib/postgresql';
  const versions = fs.existsSync(debian)
    ? fs
        .readdirSync(debian)
        .filter((name) => /^\d+(\.\d+)?$/.test(name))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const version of versions) {
    const dir = path.join(debian, version, 'bin');
    if (hasServer(dir)) return dir;
  }
  for (const entry of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!entry) continue;
    const candidate = path.join(entry, 'postgres');
    if (!fs.existsSync(candidate)) continue;
    const dir = path.dirname(fs.realpathSync(candidate));
    if (hasServer(dir)) return dir;
  }
  throw new Error(
    'no PostgreSQL server found (initdb and postgres): run scripts/ensure-postgres.sh, ' +
      'or apt-get install postgresql, or set POSTGRES_BIN_DIR',
  );
}

interface RunAs {
  uid: number;
  gid: number;
}

function idOf(user: string, flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
}

/**
 * initdb and postgres refuse to run as root. As root we run them as the `postgres` OS user (Debian's package
 * creates it; we create a system user of that name when it is missing). Spawned with uid/gid rather than
 * through runuser, so that signals reach the postmaster itself.
 */
function runAs(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  try {
    return { uid: idOf(SUPERUSER, '-u'), gid: idOf(SUPERUSER, '-g') };
  } catch {
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SUPERUSER],
      {
        stdio: 'ignore',
      },
    );
    return { uid: idOf(SUPERUSER, '-u'), gid: idOf(SUPERUSER, '-g') };
  }
}

function makeDataDir(dir: string | undefined, user: RunAs | undefined): string {
  let dataDir: string;
  if (dir) {
    dataDir = path.resolve(dir);
    fs.mkdirSync(dataDir, { recursive: true });
    if (fs.readdirSync(dataDir).length > 0)
      throw new Error(`${dataDir} is not empty: initdb needs an empty directory`);
  } else {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-pg-'));
  }
  fs.chmodSync(dataDir, 0o700);
  if (user) fs.chownSync(dataDir, user.uid, user.gid);
  return dataDir;
}

function initdb(bin: string, dir: string, fsync: boolean, user: RunAs | undefined): void {
  const args = ['-D', dir, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-instructions'];
  if (!fsync) args.push('--no-sync');
  try {
    execFileSync(path.join(bin, 'initdb'), args, {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user ?? {}),
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`initdb failed in ${dir}: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

function tail(file: string, bytes = 2000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes).trim();
  } catch {
    return '';
  }
}

/** The processes whose parent is pid (the postmaster's backends and auxiliary processes). Linux /proc only. */
function childPids(pid: number): number[] {
  const children: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return children;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** Still running: a zombie (killed, not yet reaped by whoever inherited it) counts as gone. */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function query(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => {});
  }
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<LocalPostgres> {
  const bin = postgresBinDir();
  const user = runAs();
  const port = options.port ?? (await freePort());
  const fsync = options.fsync !== false;
  const dir = makeDataDir(options.dir, user);
  const logFile = path.join(dir, 'postgres.log');
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/${DATABASE}`;
  const maintenanceUrl = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;

  const args = ['-D', dir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1'];
  if (!fsync) args.push('-c', 'fsync=off', '-c', 'full_page_writes=off');

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let ended = true;
  let spawnError: Error | undefined;
  let removed = false;

  const spawnServer = (): void => {
    const log = fs.openSync(logFile, 'a');
    try {
      const started = spawn(path.join(bin, 'postgres'), args, {
        cwd: dir,
        stdio: ['ignore', log, log],
        ...(user ?? {}),
      });
      child = started;
      ended = false;
      spawnError = undefined;
      exited = new Promise((resolve) => {
        started.once('exit', () => {
          ended = true;
          resolve();
        });
        started.once('error', (error) => {
          spawnError = error;
          ended = true;
          resolve();
        });
      });
    } finally {
      fs.closeSync(log);
    }
  };

  /** Until `select 1` answers; throws early when the postmaster exits (e.g. the old one's memory is still held). */
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (ended) {
        const why = spawnError ? String(spawnError) : 'postgres exited during start-up';
        throw new Error(`${why} (${dir}):\n${tail(logFile)}`);
      }
      try {
        await query(maintenanceUrl, 'select 1');
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(
            `postgres did not accept connections within ${READY_TIMEOUT_MS} ms (${String(error)}):\n${tail(logFile)}`,
          );
        }
        await sleep(50);
      }
    }
  };

  /**
   * Starts the server and waits until it answers. With retry (restart after kill()), a start that fails is tried
   * again for a while: a killed server's leftovers can hold its shared memory for a moment.
   */
  const startServer = async (retry: boolean): Promise<void> => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      spawnServer();
      try {
        await waitReady();
        return;
      } catch (error) {
        await stopProcess('SIGKILL');
        if (!retry || Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  };

  const stopProcess = async (signal: 'SIGINT' | 'SIGKILL'): Promise<void> => {
    const current = child;
    if (!current) return;
    if (!ended && current.pid !== undefined) {
      const pid = current.pid;
      const others = signal === 'SIGKILL' ? childPids(pid) : [];
      current.kill(signal);
      for (const other of others) {
        try {
          process.kill(other, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      const timer = setTimeout(() => current.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      const until = Date.now() + 5_000;
      while (others.some(isAlive) && Date.now() < until) await sleep(20);
    }
    child = undefined;
  };

  /** If this process ends without stop(), do not leave a server behind. */
  const onExit = () => {
    if (child && !ended) child.kill('SIGKILL');
    if (!removed) fs.rmSync(dir, { recursive: true, force: true });
  };

  initdb(bin, dir, fsync, user);
  process.once('exit', onExit);
  try {
    await startServer(false);
    await query(maintenanceUrl, `create database ${DATABASE}`);
  } catch (error) {
    await stopProcess('SIGKILL');
    process.removeListener('exit', onExit);
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    url,
    port,
    dir,
    async stop() {
      await stopProcess('SIGINT');
      process.removeListener('exit', onExit);
      fs.rmSync(dir, { recursive: true, force: true });
      removed = true;
    },
    async kill() {
      await stopProcess('SIGKILL');
    },
    async restart() {
      await stopProcess('SIGINT');
      await startServer(true);
    },
  };
}
