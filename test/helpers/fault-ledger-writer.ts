/**
 * A child process for the ledger fault test: opens the ledger and applies webhook events through `apply` in a
 * loop until it is killed, printing `applied <eventId>` once that event's apply has resolved (committed).
 *
 * Usage: node --import tsx test/helpers/fault-ledger-writer.ts <location> <run> <payments> <concurrency>
 * (`location` is a LedgerLocation as JSON, a SQLite file or a PostgreSQL database; `run` numbers the writer's
 * start, so event and payment ids never repeat across restarts; `concurrency` applies are started together, as
 * the status worker's concurrent jobs are).
 */
import { parseWebhookBody } from '../../schemas';
import {
  openLedger,
  readWebhookEvent,
  type ApplyInput,
  type EventRecord,
  type LedgerLocation,
} from '../../src/ledger';
import { planTraffic, type PlannedEvent } from './fault-traffic';

/** A small deterministic shuffle, so that events reach the ledger out of order as they do in production. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The event as the status worker hands it to `apply`: the raw body kept, the envelope read as the receiver does. */
function applyInputOf(event: PlannedEvent): ApplyInput {
  const parsed = parseWebhookBody(event.envelope);
  if (!parsed.ok)
    throw new Error(`planned event ${event.eventId} is not a valid envelope: ${parsed.message}`);
  return { event: recordOf(event), reading: readWebhookEvent(parsed.events[0]!) };
}

function recordOf(event: PlannedEvent): EventRecord {
  return {
    eventId: event.eventId,
    source: 'webhook',
    type: String(event.envelope.type),
    keyId: 'fault-key',
    signature: 'not-verified-here',
    rawBody: JSON.stringify(event.envelope),
    rawIndex: null,
    receivedAt: Date.now(),
  };
}

async function main() {
  const [locationJson, runText, paymentCount, concurrencyText] = process.argv.slice(2);
  const run = Number(runText);
  const payments = Number(paymentCount);
  const concurrency = Number(concurrencyText);
  if (!locationJson || !Number.isInteger(run) || !(payments > 0 && payments <= 10_000) || !(concurrency >= 1))
    throw new Error('usage: <location JSON> <run> <payments ≤ 10000> <concurrency ≥ 1>');
  const ledger = await openLedger(JSON.parse(locationJson) as LedgerLocation);
  const write = (line: string) => process.stdout.write(`${line}\n`);
  write('writer started');
  for (let round = 0; ; round++) {
    // Fresh payments each round, so that every round inserts payments and state changes, not only events.
    const plan = planTraffic({
      payments,
      prefix: `crash${run}-r${round}`,
      firstBase: 7_200_000_000 + (run * 1_000 + round) * 10_000,
    });
    const order = shuffled(plan.events, run * 7_919 + round + 1);
    // Applies go in groups started together, as the status worker's concurrent jobs do, so that the ledger may
    // commit a group at once; each line is printed only when that event's own apply has resolved.
    for (let start = 0; start < order.length; start += concurrency) {
      const group = order.slice(start, start + concurrency);
      // The group's first event again, as a re-delivery: the dedupe gate's write path runs too.
      const again = order[start - 1];
      await Promise.all([
        ...group.map(async (event) => {
          await ledger.apply(applyInputOf(event));
          write(`applied ${event.eventId}`);
        }),
        ...(again ? [ledger.apply(applyInputOf(again)).then(() => write(`refused ${again.eventId}`))] : []),
      ]);
    }
  }
}

main().catch((error: Error) => {
  process.stderr.write(`ledger writer failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
