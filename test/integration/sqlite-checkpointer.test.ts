import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteLedger } from '../../src/ledger';
import { startCheckpointer } from '../../src/ledger/sqlite-checkpointer';
import { waitFor } from '../helpers/wait-for';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-checkpointer-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function openWal(file: string): Database.Database {
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.exec('CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT)');
  return sqlite;
}

it('copies the WAL into the database file from its own thread while the writer never checkpoints', async () => {
  const file = path.join(dir, 'ledger.db');
  const sqlite = openWal(file);
  const checkpointer = startCheckpointer(sqlite, 50);
  expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
  const sizeBefore = fs.statSync(file).size;
  const insert = sqlite.prepare('INSERT INTO rows (body) VALUES (?)');
  const batch = sqlite.transaction(() => {
    for (let i = 0; i < 100; i++) insert.run('x'.repeat(1500));
  });
  for (let i = 0; i < 20; i++) batch(); // ~3 MB, about 750 pages: no checkpoint of the writer's own
  // Only a checkpoint moves pages into the database file, and this connection makes none.
  await waitFor(() => fs.statSync(file).size > sizeBefore + 2_000_000, 5_000);
  await checkpointer.stop();
  expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
  expect(sqlite.prepare('SELECT count(*) AS n FROM rows').get()).toEqual({ n: 2000 });
  sqlite.close();
});

it('runs in the ledger the status worker opens, and stops with close()', async () => {
  const file = path.join(dir, 'worker.db');
  const ledger = openSqliteLedger({ path: file, backgroundCheckpointMs: 20 });
  await ledger.ping();
  await ledger.close();
  const check = new Database(file);
  expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
  check.close();
});
