import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildProgram } from '../../src/cli/main';
import type { CliContext } from '../../src/cli/context';
import { CliError } from '../../src/cli/output';
import { REBUILD_INCOMPLETE_EXIT_CODE, rebuildFailure } from '../../src/cli/rebuild';
import { openSqliteLedger, readWebhookEvent, type Ledger, type RebuildReport } from '../../src/ledger';
import { createLogger } from '../../src/log';
import { runLedgerSql } from '../helpers/ledger';

const PAYMENT_ID = '3254564310_0';

/** A Direct-shaped payment webhook of `statusCode` at minute `minute`. */
function webhook(eventId: string, statusCode: number, minute: number) {
  const envelope = {
    apiVersion: 'v1',
    created: '2026-11-27T10:00:00.000+01:00',
    id: eventId,
    merchantId: 'M',
    type: 'payment.status',
    payment: {
      id: PAYMENT_ID,
      status: 'X',
      paymentOutput: { amountOfMoney: { amount: 1500, currencyCode: 'EUR' } },
      statusOutput: {
        statusCode,
        statusCategory: 'PENDING_MERCHANT',
        statusCodeChangeDateTime: `202611271${minute.toString().padStart(3, '0')}00`,
      },
    },
  };
  const rawBody = JSON.stringify(envelope);
  return {
    event: {
      eventId,
      source: 'webhook' as const,
      type: envelope.type,
      keyId: 'k',
      signature: 's',
      rawBody,
      rawIndex: null,
      receivedAt: Date.now(),
    },
    reading: readWebhookEvent(envelope),
  };
}

/**
 * `paystate rebuild` run in this process on a real SQLite ledger, with a worker's event landing just before the
 * comparison (the rebuild's test hook): that payment is left alone and reported, and the command must say so in
 * its exit code.
 */
describe('paystate rebuild exit code', () => {
  let dir: string;
  let ledger: Ledger;
  let worker: Ledger;
  let printed: jest.SpyInstance;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'paystate-cli-rebuild-'));
    const file = path.join(dir, 'ledger.db');
    ledger = openSqliteLedger({ path: file });
    worker = openSqliteLedger({ path: file });
    await worker.apply(webhook('e0', 0, 0));
    await worker.apply(webhook('e5', 5, 1));
    // The row set back to created, as a lost write would leave it: the rebuild finds a difference.
    await runLedgerSql(
      { kind: 'sqlite', path: file },
      "UPDATE payments SET status_code = 0, stage = 'created', rank = 0 WHERE id = ?",
      [PAYMENT_ID],
    );
    printed = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(async () => {
    printed.mockRestore();
    await ledger.close();
    await worker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the command line; an event is applied by another connection before the comparison when `racing`. */
  function rebuild(args: string[], racing: boolean): Promise<unknown> {
    const hooked: Ledger = {
      ...ledger,
      rebuild: (options) =>
        ledger.rebuild({
          ...options,
          beforePhase: async (phase) => {
            if (racing && phase === 'compare') await worker.apply(webhook('e91', 91, 2));
          },
        }),
    };
    const ctx = {
      verbose: false,
      log: createLogger({ level: 'error', json: true }),
      ledger: async () => hooked,
    } as unknown as CliContext;
    return buildProgram(ctx).parseAsync(['node', 'paystate', '--json', 'rebuild', ...args]);
  }

  it.each([
    ['a dry run', ['--dry-run']],
    ['a rebuild', ['--reason', 'restore']],
  ])('%s that left payments written to while it ran exits 3', async (_name, args) => {
    const error = await rebuild(args, true).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ exitCode: REBUILD_INCOMPLETE_EXIT_CODE });
    expect((error as Error).message).toMatch(/1 payment\(s\) written to while the rebuild ran.*run it again/);
    expect(JSON.parse(String(printed.mock.calls.at(-1)?.[0]))).toMatchObject({ changed: [PAYMENT_ID] });
  });

  it('a rebuild that compared every payment succeeds', async () => {
    await expect(rebuild(['--reason', 'restore'], false)).resolves.toBeDefined();
    expect(JSON.parse(String(printed.mock.calls.at(-1)?.[0]))).toMatchObject({
      changed: [],
      applied: true,
      differences: [{ paymentId: PAYMENT_ID }],
    });
  });
});

describe('rebuildFailure', () => {
  const report: RebuildReport = {
    checked: 3,
    differences: [],
    changed: ['A', 'B'],
    skipped: [],
    applied: true,
    failed: { error: 'SQLITE_BUSY', paymentIds: ['C'] },
  };

  it('a failed batch exits 1 and still names the payments written to meanwhile', () => {
    const failure = rebuildFailure(report);
    expect(failure).toMatchObject({ exitCode: 1 });
    expect(failure?.message).toBe(
      'correcting stopped at a failed transaction (SQLITE_BUSY); 1 payment(s) not corrected; ' +
        '2 payment(s) written to while the rebuild ran were not compared or corrected: run it again',
    );
  });

  it('nothing left undone is no failure', () => {
    expect(rebuildFailure({ ...report, changed: [], failed: null })).toBeUndefined();
  });
});
