import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openLedger, type Ledger } from '../../src/ledger';
import { killAll, runEntryPoint, type RunningProcess } from '../helpers/fault-processes';
import { newLedgerLocation, TEST_BACKEND, type TestLedgerLocation } from '../helpers/ledger';
import { waitFor } from '../helpers/wait-for';

const WRITER = 'test/helpers/fault-ledger-writer.ts';
/** Each start of the writer is killed after a different number of commits, so the kill lands at different points. */
const KILL_AFTER = [400, 1500, 3100];
/** Applies the writer starts together, like the status worker's default concurrency. */
const WRITER_CONCURRENCY = 10;

let dir: string;
let where: TestLedgerLocation;
const processes: RunningProcess[] = [];
let ledger: Ledger | undefined;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-fault-ledger-'));
  where = await newLedgerLocation(dir);
});

afterEach(async () => {
  await killAll(processes);
  await ledger?.close();
  ledger = undefined;
  await where.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** SQLite's own checks of the file: integrity_check and foreign_key_check (PostgreSQL enforces foreign keys). */
function sqliteFileChecks(file: string): { integrity: unknown; foreignKeyProblems: number } {
  const sqlite = new Database(file);
  try {
    return {
      integrity: sqlite.pragma('integrity_check', { simple: true }),
      foreignKeyProblems: (sqlite.pragma('foreign_key_check') as unknown[]).length,
    };
  } finally {
    sqlite.close();
  }
}

const committedIds = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.startsWith('applied '))
    .map((line) => line.slice('applied '.length));

describe(`the ledger (${TEST_BACKEND}) under a killed writer`, () => {
  it('opens again intact, keeps every committed event, and rebuilds to the same state after SIGKILLs during writes', async () => {
    const { location } = where;
    const ledgerPath = location.kind === 'sqlite' ? location.path : undefined;
    const committed: string[] = [];
    let walBytesAtKill = 0;
    for (const [run, killAfter] of KILL_AFTER.entries()) {
      const writer = runEntryPoint(`ledger writer ${run}`, WRITER, {}, [
        JSON.stringify(location),
        String(run),
        '40',
        String(WRITER_CONCURRENCY),
      ]);
      processes.push(writer);
      await waitFor(() => {
        if (writer.done()) throw new Error(`writer exited on its own:\n${writer.output()}`);
        return committedIds(writer.output()).length >= killAfter;
      }, 30_000);
      writer.child.kill('SIGKILL');
      expect(await writer.exited).toBeNull();
      if (ledgerPath)
        walBytesAtKill = Math.max(
          walBytesAtKill,
          fs.statSync(`${ledgerPath}-wal`, { throwIfNoEntry: false })?.size ?? 0,
        );
      committed.push(...committedIds(writer.output()));
    }

    const fileChecks = ledgerPath ? sqliteFileChecks(ledgerPath) : undefined;

    ledger = await openLedger(location);
    const stored = new Set<string>();
    for (let afterSeq = 0; ;) {
      const page = await ledger.listEvents({ afterSeq, limit: 1000 });
      if (page.length === 0) break;
      for (const event of page) stored.add(event.eventId);
      afterSeq = page[page.length - 1]!.seq;
    }
    const missing = committed.filter((eventId) => !stored.has(eventId));
    const rows = stored.size;
    const { eventsByOutcome, paymentsByStage } = await ledger.counts();
    const rebuild = await ledger.rebuild({ dryRun: true });

    console.log(
      `fault totals — ${TEST_BACKEND} ledger writer SIGKILLed ${KILL_AFTER.length}×: ${JSON.stringify({
        killedAfterCommits: KILL_AFTER,
        committedBeforeKills: committed.length,
        eventRows: rows,
        eventsByOutcome,
        paymentsByStage,
        ...(fileChecks && {
          walBytesAtKill,
          integrityCheck: fileChecks.integrity,
          foreignKeyProblems: fileChecks.foreignKeyProblems,
        }),
        rebuildChecked: rebuild.checked,
        rebuildDifferences: rebuild.differences.length,
        missingCommitted: missing.length,
      })}`,
    );
    if (fileChecks) expect(fileChecks).toEqual({ integrity: 'ok', foreignKeyProblems: 0 });
    // A killed process loses no committed transaction (SQLite: WAL, synchronous=NORMAL, only power loss can;
    // PostgreSQL: the server rolls back what the dead connection left open).
    expect(missing).toEqual([]);
    // Only the group in flight at each kill may have committed without its lines being printed.
    expect(rows).toBeGreaterThanOrEqual(committed.length);
    expect(rows).toBeLessThanOrEqual(committed.length + KILL_AFTER.length * WRITER_CONCURRENCY);
    expect(rebuild.differences).toEqual([]);
    expect(rebuild.checked).toBeGreaterThan(0);
  }, 90_000);
});
