import { Worker } from 'node:worker_threads';

export interface SqlQuery {
  sql: string;
  params: unknown[];
}

/**
 * Runs in its own thread with its own connection: one read transaction, so all the counts come from one
 * snapshot, each query's rows read as arrays.
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let db;
let readAll;
let openError;
try {
  const Database = require(workerData.driver);
  db = new Database(workerData.path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const queries = Object.entries(workerData.queries).map(([name, query]) => [
    name,
    db.prepare(query.sql).raw(),
    query.params,
  ]);
  readAll = db.transaction(() =>
    Object.fromEntries(queries.map(([name, statement, params]) => [name, statement.all(...params)])),
  );
} catch (error) {
  // Errors cross threads without their message: send it as text.
  openError = String(error.message);
}
parentPort.on('message', (id) => {
  if (id === 'stop') {
    db?.close();
    parentPort.close();
    return;
  }
  if (openError !== undefined) return parentPort.postMessage({ id, error: openError, fatal: true });
  try {
    parentPort.postMessage({ id, rows: readAll() });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error.message) });
  }
});
`;

export interface CountsReader<Name extends string> {
  /** Each query's rows (as arrays), all read from one snapshot. */
  read(): Promise<Record<Name, unknown[][]>>;
  stop(): Promise<void>;
}

interface Pending {
  resolve: (rows: never) => void;
  reject: (error: Error) => void;
}

/**
 * Runs the ledger's counting queries on a thread of their own. They read whole tables and indexes (150–200 ms
 * at 0.9M events and 180k payments here), and better-sqlite3 runs a query on the calling thread: in the web
 * process each metrics scrape would stall the webhook receiver for that long. A thread that dies is replaced at
 * the next read, so one crash costs one scrape.
 */
export function startCountsReader<Name extends string>(
  path: string,
  queries: Record<Name, SqlQuery>,
): CountsReader<Name> {
  let current = spawnCountingThread<Name>(path, queries);
  let stopped = false;
  return {
    read: () => {
      if (stopped) return Promise.reject(new Error('the ledger is closed'));
      if (current.ended()) current = spawnCountingThread(path, queries);
      return current.read();
    },
    stop: () => {
      stopped = true;
      return current.stop();
    },
  };
}

function spawnCountingThread<Name extends string>(path: string, queries: Record<Name, SqlQuery>) {
  const thread = new Worker(THREAD_SOURCE, {
    eval: true,
    workerData: { driver: require.resolve('better-sqlite3'), path, queries },
  });
  thread.unref();
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let ended: Error | undefined;
  let stopping = false;
  const settle = (id: number) => {
    const waiting = pending.get(id);
    pending.delete(id);
    // Held while a read is waiting, so that a process with nothing else to do still gets its answer.
    if (pending.size === 0 && !stopping) thread.unref();
    return waiting;
  };
  thread.on('message', (reply: { id: number; rows?: never; error?: string; fatal?: boolean }) => {
    const waiting = settle(reply.id);
    if (reply.error === undefined) return waiting?.resolve(reply.rows!);
    const error = new Error(`counting the ledger failed: ${reply.error}`);
    waiting?.reject(error);
    // It could not open the ledger: the next read tries again on a new thread.
    if (reply.fatal) {
      failAll(error);
      void thread.terminate();
    }
  });
  const failAll = (error: Error) => {
    ended = error;
    for (const id of [...pending.keys()]) settle(id)?.reject(error);
  };
  thread.on('error', (error: Partial<Error> & { code?: string }) =>
    failAll(new Error(`counting the ledger failed: ${error.message ?? error.code ?? 'thread error'}`)),
  );
  const exited = new Promise<void>((resolve) =>
    thread.once('exit', () => {
      failAll(ended ?? new Error('the ledger counting thread has ended'));
      resolve();
    }),
  );
  return {
    ended: () => ended !== undefined,
    read: () =>
      new Promise<Record<Name, unknown[][]>>((resolve, reject) => {
        if (ended) return reject(ended);
        const id = nextId++;
        pending.set(id, { resolve, reject });
        thread.ref();
        thread.postMessage(id);
      }),
    stop: async () => {
      // Held until it has ended: a stopping process with nothing else left would exit before the thread does.
      stopping = true;
      thread.ref();
      thread.postMessage('stop');
      await exited;
    },
  };
}
