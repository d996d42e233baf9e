import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createGroupCommit } from '../../src/ledger/sqlite-group-commit';

describe('SQLite group commit', () => {
  let sqlite: Database.Database;
  const rows = () => sqlite.prepare('select n from t order by n').pluck().all();

  beforeEach(() => {
    sqlite = new Database(':memory:');
    sqlite.exec('create table t (n integer primary key)');
  });
  afterEach(() => sqlite.close());

  it('commits the pieces of one turn together, each seeing the ones before it', async () => {
    const group = createGroupCommit(sqlite);
    const insert = sqlite.prepare('insert into t (n) values (?)');
    const count = sqlite.prepare('select count(*) from t').pluck();
    const results = await Promise.all([1, 2, 3].map((n) => group.run(() => (insert.run(n), count.get()))));
    expect(results).toEqual([1, 2, 3]);
    expect(rows()).toEqual([1, 2, 3]);
  });

  it('rolls back only the piece that throws, even after it wrote, and rejects only its promise', async () => {
    const group = createGroupCommit(sqlite);
    const insert = sqlite.prepare('insert into t (n) values (?)');
    const settled = await Promise.allSettled([
      group.run(() => insert.run(1)),
      group.run(() => {
        insert.run(2);
        throw new Error('bad event');
      }),
      group.run(() => insert.run(3)),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toEqual(new Error('bad event'));
    expect(rows()).toEqual([1, 3]);
  });

  it('rejects the whole batch when the transaction cannot begin', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'group-commit-'));
    const file = path.join(dir, 'ledger.db');
    const writer = new Database(file);
    writer.exec('create table t (n integer primary key)');
    const busy = new Database(file);
    busy.pragma('busy_timeout = 0');
    const group = createGroupCommit(busy);
    const insert = busy.prepare('insert into t (n) values (?)');
    writer.exec('begin immediate');
    const settled = await Promise.allSettled([1, 2].map((n) => group.run(() => insert.run(n))));
    writer.exec('rollback');
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(busy.prepare('select count(*) from t').pluck().get()).toBe(0);
    busy.close();
    writer.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
