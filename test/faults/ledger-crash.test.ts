import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteLedger, type Ledger } from '../../src/ledger';
import { killAll, runEntryPoint, type RunningProcess } from '../helpers/fault-processes';
import { waitFor } from '../helpers/wait-for';

const WRITER = 'test/helpers/fault-ledger-writer.ts';
/** Each start of the writer is killed after a different number of commits, so the kill lands at different points. */
const KILL_AFTER = [400, 1500, 3100];
/** Applies the writer starts together, like the status worker's default concurrency. */
const WRITER_CONCURRENCY = 10;

let dir: string;
const processes: RunningProcess[] = [];
let ledger: Ledger | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-fault-ledger-'));
});

afterEach(async () => {
  await killAll(processes);
  await ledger?.close();
  ledger = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

const committedIds = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.startsWith('applied '))
    .map((line) => line.slice('applied '.length));

describe('SQLite ledger under a killed writer', () => {
  it('opens again intact, keeps every committed event, and rebuilds to the same state after SIGKILLs during writes', async () => {
    const ledgerPath = path.join(dir, 'ledger.db');
    const committed: string[] = [];
    let walBytesAtKill = 0;
    for (const [run, killAfter] of KILL_AFTER.entries()) {
      const writer = runEntryPoint(`ledger writer ${run}`, WRITER, {}, [
        ledgerPath,
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
      walBytesAtKill = Math.max(
        walBytesAtKill,
        fs.statSync(`${ledgerPath}-wal`, { throwIfNoEntry: false })?.size ?? 0,
      );
      committed.push(...committedIds(writer.output()));
    }

    const sqlite = new Database(ledgerPath);
    const integrity = sqlite.pragma('integrity_check', { simple: true });
    const foreignKeyProblems = sqlite.pragma('foreign_key_check') as unknown[];
    sqlite.close();

    ledger = openSqliteLedger({ path: ledgerPath });
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
      `fault totals — SQLite writer SIGKILLed ${KILL_AFTER.length}×: ${JSON.stringify({
        killedAfterCommits: KILL_AFTER,
        committedBeforeKills: committed.length,
        eventRows: rows,
        eventsByOutcome,
        paymentsByStage,
        walBytesAtKill,
        integrityCheck: integrity,
        foreignKeyProblems: foreignKeyProblems.length,
        rebuildChecked: rebuild.checked,
        rebuildDifferences: rebuild.differences.length,
        missingCommitted: missing.length,
      })}`,
    );
    expect(integrity).toBe('ok');
    expect(foreignKeyProblems).toEqual([]);
    // A killed process loses no committed transaction (WAL, synchronous=NORMAL: only power loss can).
    expect(missing).toEqual([]);
    // Only the group in flight at each kill may have committed without its lines being printed.
    expect(rows).toBeGreaterThanOrEqual(committed.length);
    expect(rows).toBeLessThanOrEqual(committed.length + KILL_AFTER.length * WRITER_CONCURRENCY);
    expect(rebuild.differences).toEqual([]);
    expect(rebuild.checked).toBeGreaterThan(0);
  }, 90_000);
});
