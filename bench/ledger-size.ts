/**
 * Bytes the ledger keeps per event: with raw bodies (inside RAW_EVENT_RETENTION) and after they are cleared
 * (outcome rows kept forever). Usage: npm run bench:ledger-size  (BENCH_EVENTS=10000 by default)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteLedger, readWebhookEvent } from '../src/ledger';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const CODES = [0, 5, 91, 9, 9];

function eventBody(n: number) {
  const payment = Math.floor(n / CODES.length);
  return {
    apiVersion: 'v1',
    created: '2026-11-27T10:00:00.000+01:00',
    id: `bench-${n}`,
    merchantId: 'BenchMerchant',
    type: 'payment.captured',
    payment: {
      id: `${4000000000 + payment}_0`,
      status: 'CAPTURED',
      statusOutput: {
        statusCode: CODES[n % CODES.length],
        statusCategory: 'COMPLETED',
        statusCodeChangeDateTime: `2026112710${String(n % CODES.length).padStart(2, '0')}00`,
        isAuthorized: true,
        isCancellable: false,
        isRefundable: true,
      },
      paymentOutput: {
        amountOfMoney: { amount: 1500, currencyCode: 'EUR' },
        references: { merchantReference: `order-${payment}` },
        paymentMethod: 'card',
        cardPaymentMethodSpecificOutput: {
          paymentProductId: 2,
          authorisationCode: 'test123',
          card: { cardNumber: '***********7346', expiryDate: '1226', bin: '375418', countryCode: '99' },
          fraudResults: { fraudServiceResult: 'accepted', avsResult: '0', cvvResult: '0' },
          threeDSecureResults: { version: '2.2.0', flow: 'frictionless', eci: '5', liability: 'issuer' },
        },
      },
    },
  };
}

function fileBytes(file: string): number {
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('VACUUM');
  db.close();
  return fs.statSync(file).size;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-size-'));
  const file = path.join(dir, 'ledger.db');
  try {
    const ledger = openSqliteLedger({ path: file });
    let rawBytes = 0;
    for (let n = 0; n < EVENTS; n++) {
      const body = eventBody(n);
      const text = JSON.stringify(body);
      rawBytes += Buffer.byteLength(text);
      await ledger.apply({
        event: {
          eventId: body.id,
          source: 'webhook',
          type: body.type,
          keyId: 'bench-key',
          signature: 'A'.repeat(44),
          rawBody: text,
          rawIndex: null,
          receivedAt: Date.now() - 500 * 86_400_000,
        },
        reading: readWebhookEvent(body),
      });
    }
    await ledger.close();
    const empty = path.join(dir, 'empty.db');
    await openSqliteLedger({ path: empty }).close();
    const base = fileBytes(empty);
    const withRaw = fileBytes(file) - base;
    const purger = openSqliteLedger({ path: file });
    await purger.purgeRawBodies(Date.now());
    await purger.close();
    const withoutRaw = fileBytes(file) - base;
    const perEvent = (bytes: number) => (bytes / EVENTS).toFixed(0);
    console.log(
      `events: ${EVENTS} (${EVENTS / CODES.length} payments), mean raw body ${perEvent(rawBytes)} B`,
    );
    console.log(`ledger bytes per event, raw body kept:    ${perEvent(withRaw)}`);
    console.log(`ledger bytes per event, raw body cleared: ${perEvent(withoutRaw)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
