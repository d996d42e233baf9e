/**
 * bench:sweep — the reconciler's due-payments query on ledgers of 10k, 100k and 1M payments. The sweep must read
 * through the next-check index, so its time should barely grow with the ledger: the ratio 1M / 10k is printed
 * (target: within 2x). Rows are bulk-inserted straight into a migrated ledger; only the query is timed.
 * Usage: npm run bench:sweep   (BENCH_SIZES=10000,100000,1000000 BENCH_RUNS=200)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { openSqliteLedger } from '../src/ledger';
import * as schema from '../src/ledger/schema';
import { dueChecksQuery } from '../src/ledger/sqlite-ledger';

const SIZES = (process.env.BENCH_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const SWEEP_CAP = 500;
const DUE_ROWS = 200;
const NOW = 1_800_000_000_000;

function fill(file: string, size: number) {
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = OFF');
  const insert = sqlite.prepare(
    `insert into payments (id, base, merchant_reference, amount, currency, status_code, stage, rank, next_check_at,
       first_seen_at, updated_at) values (?, ?, ?, 1500, 'EUR', ?, ?, ?, ?, ?, ?)`,
  );
  const insertAll = sqlite.transaction((from: number, to: number) => {
    for (let n = from; n < to; n++) {
      const id = `${4000000000 + n}_0`;
      // Most payments are conclusive (no check); 1 in 50 is waiting. The same number is due in every ledger
      // (DUE_ROWS), so the sweep reads as many rows whatever the ledger's size: only the table around them grows.
      const waiting = n % 50 === 0;
      const due = waiting && n / 50 < DUE_ROWS;
      const nextCheckAt = !waiting ? null : due ? NOW - 60_000 : NOW + 60_000 + (n % 1440) * 60_000;
      insert.run(
        id,
        String(4000000000 + n),
        `order-${n}`,
        waiting ? 5 : 9,
        waiting ? 'authorised' : 'captured',
        waiting ? 20 : 40,
        nextCheckAt,
        NOW,
        NOW,
      );
    }
  });
  for (let from = 0; from < size; from += 50_000) insertAll(from, Math.min(size, from + 50_000));
  sqlite.exec('ANALYZE');
  sqlite.close();
}

function timeSweep(file: string): { medianUs: number; due: number; plan: string } {
  const sqlite = new Database(file, { readonly: true });
  const db = drizzle(sqlite, { schema });
  const query = dueChecksQuery(db, NOW, SWEEP_CAP).prepare();
  const plan = (
    sqlite
      .prepare(`EXPLAIN QUERY PLAN ${dueChecksQuery(db, NOW, SWEEP_CAP).toSQL().sql}`)
      .all(NOW, SWEEP_CAP) as { detail: string }[]
  )
    .map((row) => row.detail)
    .join('; ');
  let due = 0;
  for (let i = 0; i < 20; i++) due = query.all().length;
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    query.all();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  sqlite.close();
  samples.sort((a, b) => a - b);
  return { medianUs: samples[Math.floor(samples.length / 2)]!, due, plan };
}

function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-bench-sweep-'));
  try {
    console.log(
      `bench:sweep  ${new Date().toISOString()}  cores=${os.cpus().length}  node=${process.version}  runs=${RUNS}`,
    );
    const results: { size: number; medianUs: number; due: number; plan: string }[] = [];
    for (const size of SIZES) {
      const file = path.join(dir, `ledger-${size}.db`);
      void openSqliteLedger({ path: file }).close();
      fill(file, size);
      results.push({ size, ...timeSweep(file) });
    }
    const base = results[0]!;
    for (const r of results) {
      const ratio = r.medianUs / base.medianUs;
      console.log(
        `payments=${String(r.size).padStart(8)}  due rows read=${r.due}  median=${r.medianUs.toFixed(0)} µs  ratio vs ${base.size}=${ratio.toFixed(2)}`,
      );
    }
    console.log(`plan: ${results.at(-1)!.plan}`);
    const worst = results.at(-1)!.medianUs / base.medianUs;
    console.log(
      `target: largest within 2x of smallest → ${worst <= 2 ? 'met' : 'NOT met'} (${worst.toFixed(2)}x)`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
