import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Payment } from '../../src/ledger';
import { createGroupCommit } from '../../src/ledger/sqlite-group-commit';
import { createPaymentRowCache } from '../../src/ledger/sqlite-payment-cache';

/** Rows of a table `p (id, stage)` stand in for payment rows: the cache only reads `id`. */
const row = (id: string, stage: string) => ({ id, stage }) as unknown as Payment;

describe('SQLite payment row cache', () => {
  let dir: string;
  let sqlite: Database.Database;
  let other: Database.Database;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-cache-'));
    sqlite = new Database(path.join(dir, 'l.db'));
    sqlite.pragma('journal_mode = WAL');
    sqlite.exec('create table p (id text primary key, stage text)');
    other = new Database(path.join(dir, 'l.db'));
  });
  afterEach(() => {
    other.close();
    sqlite.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A batch as the ledger runs one: the cache's pieces go through `group.run`, the store writes through. */
  function harness() {
    const cache = createPaymentRowCache(sqlite);
    const group = createGroupCommit(sqlite, cache);
    const write = sqlite.prepare(
      'insert into p (id, stage) values (?, ?) on conflict (id) do update set stage = excluded.stage',
    );
    const read = sqlite.prepare('select id, stage from p where id = ?');
    const save = (payment: Payment) => {
      write.run(payment.id, (payment as unknown as { stage: string }).stage);
      cache.put(payment);
    };
    /** What the apply path would see: the cached row, or the row read (and then cached). */
    const lookUp = (id: string) => {
      const cached = cache.get(id);
      if (cached) return { from: 'cache', row: cached };
      const found = read.get(id) as Payment | undefined;
      if (found) cache.put(found);
      return { from: 'db', row: found };
    };
    return { cache, group, save, lookUp };
  }

  it('serves the rows a committed batch wrote to the next batch', async () => {
    const { group, save, lookUp } = harness();
    await group.run(() => save(row('P', 'authorised')));
    expect(await group.run(() => lookUp('P'))).toEqual({ from: 'cache', row: row('P', 'authorised') });
  });

  it('answers nothing outside a batch', async () => {
    const { cache, group, save } = harness();
    await group.run(() => save(row('P', 'authorised')));
    expect(cache.get('P')).toBeUndefined();
  });

  it('drops its rows when another connection committed since', async () => {
    const { group, save, lookUp } = harness();
    await group.run(() => save(row('P', 'authorised')));
    other.prepare("update p set stage = 'captured' where id = 'P'").run();
    expect(await group.run(() => lookUp('P'))).toEqual({ from: 'db', row: row('P', 'captured') });
  });

  it('drops its rows when this connection wrote outside a batch, even a write rolled back', async () => {
    const { group, save, lookUp } = harness();
    await group.run(() => save(row('P', 'authorised')));
    sqlite.prepare("update p set stage = 'released' where id = 'P'").run();
    expect(await group.run(() => lookUp('P'))).toEqual({ from: 'db', row: row('P', 'released') });

    sqlite.exec("begin; update p set stage = 'dry run' where id = 'P'; rollback");
    expect(await group.run(() => lookUp('P'))).toEqual({ from: 'db', row: row('P', 'released') });
  });

  it('answers nothing while the pieces of a batch that did not commit run again one by one', async () => {
    const { group, save, lookUp } = harness();
    await group.run(() => save(row('P', 'authorised')));
    const settled = await Promise.allSettled([
      group.run(() => {
        save(row('P', 'rolled back'));
        throw new Error('bad event');
      }),
      group.run(() => lookUp('P')),
    ]);
    expect(settled).toEqual([
      { status: 'rejected', reason: new Error('bad event') },
      { status: 'fulfilled', value: { from: 'db', row: row('P', 'authorised') } },
    ]);
    expect(await group.run(() => lookUp('P'))).toEqual({ from: 'db', row: row('P', 'authorised') });
  });

  it('holds at most its capacity, dropping the oldest row first', async () => {
    const cache = createPaymentRowCache(sqlite, 2);
    const group = createGroupCommit(sqlite, cache);
    const seen = await group.run(() => {
      for (const id of ['A', 'B', 'C']) cache.put(row(id, 'authorised'));
      return ['A', 'B', 'C'].map((id) => cache.get(id)?.id);
    });
    expect(seen).toEqual([undefined, 'B', 'C']);
  });

  it('freezes the rows it shares', async () => {
    const { group, save, lookUp } = harness();
    await group.run(() => save(row('P', 'authorised')));
    const { row: cached } = await group.run(() => lookUp('P'));
    expect(Object.isFrozen(cached)).toBe(true);
  });
});
