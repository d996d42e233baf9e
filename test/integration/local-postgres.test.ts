import fs from 'node:fs';
import pg from 'pg';
import { startPostgres, type LocalPostgres } from '../../src/local';
import { createTestDatabase, dropTestDatabase } from '../helpers/postgres';

async function queryOnce<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('the shared PostgreSQL server of the test run', () => {
  it('is up at TEST_POSTGRES_URL, as superuser postgres', async () => {
    const url = process.env.TEST_POSTGRES_URL;
    expect(url).toBeDefined();
    const [row] = await queryOnce<{ user: string; superuser: boolean }>(
      url as string,
      'select current_user as user, (select rolsuper from pg_roles where rolname = current_user) as superuser',
    );
    expect(row).toEqual({ user: 'postgres', superuser: true });
  });

  it('gives each createTestDatabase its own empty database, and dropTestDatabase removes it', async () => {
    const a = await createTestDatabase();
    const b = await createTestDatabase();
    expect(a).not.toBe(b);
    expect(new URL(a).host).toBe(new URL(process.env.TEST_POSTGRES_URL as string).host);

    await queryOnce(a, 'create table t (n int); insert into t values (1)');
    expect(await queryOnce(a, 'select n from t')).toEqual([{ n: 1 }]);
    expect(await queryOnce(b, "select to_regclass('public.t') as t")).toEqual([{ t: null }]);

    // A connection the test left open does not stop the drop.
    const open = new pg.Client({ connectionString: a });
    open.on('error', () => {});
    await open.connect();
    await dropTestDatabase(a);
    await dropTestDatabase(b);
    await open.end().catch(() => {});
    await expect(queryOnce(a, 'select 1')).rejects.toMatchObject({ code: '3D000' }); // invalid_catalog_name
    await expect(queryOnce(b, 'select 1')).rejects.toMatchObject({ code: '3D000' });
  });
});

describe('a private PostgreSQL server', () => {
  let server: LocalPostgres;

  beforeAll(async () => {
    server = await startPostgres({ fsync: false });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('has the URL form postgres://postgres@127.0.0.1:<port>/paystate', () => {
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/paystate`);
  });

  it('comes back after kill() and restart() with its committed rows, and a pool reconnects', async () => {
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    const poolErrors: Error[] = [];
    pool.on('error', (error) => poolErrors.push(error));
    try {
      await pool.query('create table t (n int)');
      await pool.query('insert into t select generate_series(1, 100)');

      await server.kill();
      await expect(pool.query('select 1')).rejects.toThrow();

      await server.restart();
      expect((await pool.query('select count(*)::int as n from t')).rows).toEqual([{ n: 100 }]);
      await pool.query('insert into t values (101)');
      expect((await pool.query('select max(n) as n from t')).rows).toEqual([{ n: 101 }]);
    } finally {
      await pool.end();
    }
  });

  it('restart() of a running server keeps its data', async () => {
    await server.restart();
    expect(await queryOnce(server.url, 'select count(*)::int as n from t')).toEqual([{ n: 101 }]);
  });

  it('stop() shuts it down and removes its data directory', async () => {
    expect(fs.existsSync(server.dir)).toBe(true);
    await server.stop();
    expect(fs.existsSync(server.dir)).toBe(false);
    await expect(queryOnce(server.url, 'select 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
