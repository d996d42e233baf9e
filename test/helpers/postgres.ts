import crypto from 'node:crypto';
import pg from 'pg';

/**
 * Databases on the shared PostgreSQL server that test/helpers/global-setup.ts starts (TEST_POSTGRES_URL, its admin
 * URL). Each test file takes its own database, so files running in parallel workers never see each other's rows.
 */

function adminUrl(): string {
  const url = process.env.TEST_POSTGRES_URL;
  if (!url)
    throw new Error(
      'TEST_POSTGRES_URL is not set: the jest global setup starts the shared PostgreSQL server',
    );
  return url;
}

async function asAdmin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl() });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function databaseOf(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!/^paystate_test_[a-z0-9_]+$/.test(name)) throw new Error(`not a test database: ${url}`);
  return name;
}

/** A new, empty database on the shared server; returns its URL (the admin URL with the database swapped). */
export async function createTestDatabase(): Promise<string> {
  const name = `paystate_test_${process.pid}_${crypto.randomBytes(6).toString('hex')}`;
  await asAdmin(`create database "${name}"`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database made by createTestDatabase, closing any connections a test left open. */
export async function dropTestDatabase(url: string): Promise<void> {
  await asAdmin(`drop database if exists "${databaseOf(url)}" with (force)`);
}
