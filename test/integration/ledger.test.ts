import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  openLedger,
  readWebhookEvent,
  type ApplyResult,
  type EventRecord,
  type Ledger,
  type LedgerLocation,
  type PaymentView,
} from '../../src/ledger';
import { newLedgerLocation, runLedgerSql, TEST_BACKEND, type TestLedgerLocation } from '../helpers/ledger';

const FIXTURES = path.join(__dirname, '../fixtures');
const REPO_ROOT = path.join(__dirname, '../..');

interface StatusOutput {
  statusCode?: unknown;
  statusCategory?: string;
  statusCodeChangeDateTime?: string;
  [field: string]: unknown;
}

interface PaymentEnvelope {
  id: string;
  type: string;
  payment: {
    id: string;
    status?: string;
    statusOutput: StatusOutput;
    paymentOutput: { amountOfMoney: { amount: number; currencyCode: string }; [field: string]: unknown };
  };
  [field: string]: unknown;
}

interface RefundEnvelope {
  id: string;
  type: string;
  refund: {
    id: string;
    status?: string;
    statusOutput: StatusOutput;
    refundOutput: { amountOfMoney: { amount: number; currencyCode: string }; [field: string]: unknown };
  };
  [field: string]: unknown;
}

type Envelope = Parameters<typeof readWebhookEvent>[0] & { id: string };

function fixtureJson<T>(file: string): T {
  return JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')) as T;
}

const PAYMENT_FIXTURE = fixtureJson<PaymentEnvelope>(
  'plugin-magento-core_stub_webhook_payment.pending_capture.json',
);
const REFUND_FIXTURE = fixtureJson<RefundEnvelope>(
  'plugin-magento-core_stub_webhook_refund.refund_requested.json',
);

/** The Magento stub's payment; its refunds are `3254564310_1`, `3254564310_2`. */
const PAYMENT_ID = '3254564310_0';
const PAYMENT_AMOUNT = 1500;
const NOW = Date.UTC(2024, 0, 5, 10, 0, 0);

const T1 = '20240105100000';
const T2 = '20240105100100';
const T3 = '20240105100200';
const T4 = '20240105100300';
const T5 = '20240105100400';
const T6 = '20240105100500';
const T7 = '20240105100600';

/** status / statusCategory the platform sends with each code used here (platform.md table). */
const STATUS_OF: Record<number, [status: string, category: string, type: string]> = {
  0: ['CREATED', 'CREATED', 'payment.created'],
  46: ['REDIRECTED', 'PENDING_PAYMENT', 'payment.redirected'],
  2: ['REJECTED', 'UNSUCCESSFUL', 'payment.rejected'],
  5: ['PENDING_CAPTURE', 'PENDING_MERCHANT', 'payment.pending_capture'],
  91: ['CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.capture_requested'],
  93: ['REJECTED_CAPTURE', 'UNSUCCESSFUL', 'payment.rejected_capture'],
  9: ['CAPTURED', 'COMPLETED', 'payment.captured'],
  81: ['REFUND_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.refund_requested'],
  83: ['REJECTED', 'UNSUCCESSFUL', 'payment.rejected'],
  8: ['REFUNDED', 'REFUNDED', 'payment.refunded'],
};

interface PaymentEventOptions {
  eventId: string;
  statusCode: number;
  changeTime: string | null;
  paymentId?: string;
  type?: string;
  statusCategory?: string | null;
  merchantReference?: string;
}

/** A webhook event cloned from the Magento payment stub, with the status fields set. */
function paymentEvent(options: PaymentEventOptions): PaymentEnvelope {
  const envelope = structuredClone(PAYMENT_FIXTURE);
  const [status, category, type] = STATUS_OF[options.statusCode] ?? ['UNKNOWN', undefined, 'payment.unknown'];
  envelope.id = options.eventId;
  envelope.type = options.type ?? type;
  envelope.payment.id = options.paymentId ?? PAYMENT_ID;
  envelope.payment.status = status;
  const so = envelope.payment.statusOutput;
  so.statusCode = options.statusCode;
  const statusCategory = options.statusCategory === undefined ? category : options.statusCategory;
  if (statusCategory === null || statusCategory === undefined) delete so.statusCategory;
  else so.statusCategory = statusCategory;
  if (options.changeTime === null) delete so.statusCodeChangeDateTime;
  else so.statusCodeChangeDateTime = options.changeTime;
  if (options.merchantReference !== undefined) {
    envelope.payment.paymentOutput.references = { merchantReference: options.merchantReference };
  }
  return envelope;
}

interface RefundEventOptions {
  eventId: string;
  refundId: string;
  amount: number;
  changeTime: string;
  statusCode?: number;
  merchantReference?: string;
}

/** A refund webhook cloned from the Magento refund stub; statusCode 8 means refunded here. */
function refundEvent(options: RefundEventOptions): RefundEnvelope {
  const envelope = structuredClone(REFUND_FIXTURE);
  envelope.id = options.eventId;
  envelope.type = 'refund.refunded';
  envelope.refund.id = options.refundId;
  envelope.refund.status = 'REFUNDED';
  envelope.refund.refundOutput.amountOfMoney.amount = options.amount;
  Object.assign(envelope.refund.statusOutput, {
    statusCode: options.statusCode ?? 8,
    statusCategory: 'REFUNDED',
    statusCodeChangeDateTime: options.changeTime,
  });
  if (options.merchantReference !== undefined) {
    envelope.refund.refundOutput.references = { merchantReference: options.merchantReference };
  }
  return envelope;
}

function record(envelope: Envelope, overrides: Partial<EventRecord> = {}): EventRecord {
  return {
    eventId: envelope.id,
    source: 'webhook',
    type: envelope.type,
    keyId: 'k',
    signature: 's',
    rawBody: JSON.stringify(envelope),
    rawIndex: null,
    receivedAt: NOW,
    ...overrides,
  };
}

function deliver(
  ledger: Ledger,
  envelope: Envelope,
  overrides: Partial<EventRecord> = {},
): Promise<ApplyResult> {
  return ledger.apply({ event: record(envelope, overrides), reading: readWebhookEvent(envelope) });
}

/** A payment's state without the wall-clock columns and the event statistics. */
function stateOf(view: PaymentView | undefined) {
  if (!view) return undefined;
  // The reconciler's schedule depends on when events arrived (a refund event asks for a prompt re-check, and
  // a poll ladder climbs from the time of each write), so it is not part of the state that must not depend on
  // order.
  const {
    firstSeenAt: _f,
    updatedAt: _u,
    eventCount: _c,
    lastEventAt: _l,
    nextCheckAt: _n,
    checkAttempts: _a,
    refundCheckAt: _r,
    ...state
  } = view;
  return state;
}

/** Like stateOf, without the payment's identity, to compare payments of different ids. */
function portableStateOf(view: PaymentView | undefined) {
  const state = stateOf(view);
  if (!state) return undefined;
  const { id: _id, base: _base, ...rest } = state;
  return rest;
}

/** Which fields of two states differ, as `field: expected ≠ actual`. */
function differences(expected: object, actual: object | undefined): string[] {
  if (!actual) return ['payment missing'];
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...keys]
    .filter((key) => JSON.stringify(expected[key as never]) !== JSON.stringify(actual[key as never]))
    .map(
      (key) => `${key}: ${JSON.stringify(expected[key as never])} ≠ ${JSON.stringify(actual[key as never])}`,
    );
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

/** Deterministic shuffle (mulberry32), so a failing order can be reproduced. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

interface Step {
  statusCode: number;
  changeTime: string;
}

const LIFECYCLE: readonly Step[] = [
  { statusCode: 0, changeTime: T1 },
  { statusCode: 5, changeTime: T2 },
  { statusCode: 91, changeTime: T3 },
  { statusCode: 9, changeTime: T4 },
  { statusCode: 81, changeTime: T5 },
  { statusCode: 8, changeTime: T6 },
];

const FAILED_LIFECYCLE: readonly Step[] = [
  { statusCode: 0, changeTime: T1 },
  { statusCode: 46, changeTime: T2 },
  { statusCode: 2, changeTime: T3 },
];

function stepEvent(paymentId: string, step: Step, suffix = '', merchantReference?: string): PaymentEnvelope {
  return paymentEvent({
    eventId: `${paymentId}/${step.statusCode}@${step.changeTime}${suffix}`,
    paymentId,
    statusCode: step.statusCode,
    changeTime: step.changeTime,
    merchantReference,
  });
}

/** Distinct payment ids (and id bases) for running many orderings in one ledger without cross-talk. */
function orderingPaymentId(i: number): string {
  return `${7000000000 + i}_0`;
}

let dir: string;
let clock: number;
let opened: Ledger[];
let locations: Map<string, TestLedgerLocation>;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'paystate-ledger-'));
  clock = NOW;
  opened = [];
  locations = new Map();
});

afterEach(async () => {
  for (const ledger of opened) await ledger.close();
  for (const where of locations.values()) await where.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Where the ledger called `name` lives in this test (a file in its temp dir, or a database): made on first use. */
async function ledgerLocation(name: string): Promise<LedgerLocation> {
  let where = locations.get(name);
  if (!where) {
    const folder = path.join(dir, name);
    mkdirSync(folder);
    where = await newLedgerLocation(folder);
    locations.set(name, where);
  }
  return where.location;
}

/**
 * A migrated ledger on the backend under test, closed (and dropped) in afterEach. Ledgers of the same name in
 * one test are handles on the same ledger; a new name is a fresh ledger.
 */
async function buildLedger(name = 'ledger'): Promise<Ledger> {
  const ledger = await openLedger(await ledgerLocation(name), { now: () => clock });
  opened.push(ledger);
  return ledger;
}

describe('the change feed', () => {
  it('tells the last committed seq: 0 when empty, then the seq of the newest change, unmoved by a duplicate', async () => {
    const ledger = await buildLedger();
    expect(await ledger.lastChangeSeq()).toBe(0);
    await deliver(ledger, paymentEvent({ eventId: 'evt-f5', statusCode: 5, changeTime: T2 }));
    const duplicate = paymentEvent({ eventId: 'evt-f9', statusCode: 9, changeTime: T3 });
    await deliver(ledger, duplicate);
    const changes = await ledger.listChanges(0, 100);
    expect(changes.length).toBeGreaterThan(1);
    expect(await ledger.lastChangeSeq()).toBe(changes.at(-1)!.seq);
    await deliver(ledger, duplicate);
    expect(await ledger.lastChangeSeq()).toBe(changes.at(-1)!.seq);
  });

  it('pages each change with its payment as stored (flags true, false and not said), in seq order, up to the limit', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, paymentEvent({ eventId: 'evt-p5', statusCode: 5, changeTime: T2 }));
    const captured = paymentEvent({ eventId: 'evt-p9', statusCode: 9, changeTime: T3 });
    delete (captured.payment.statusOutput as { isCancellable?: boolean }).isCancellable;
    await deliver(ledger, captured);
    const { eventCount: _count, lastEventAt: _last, ...payment } = (await ledger.getPayment(PAYMENT_ID))!;
    expect([payment.isAuthorized, payment.isRefundable, payment.isCancellable]).toEqual([true, false, null]);

    const changes = await ledger.listChanges(0, 100);
    expect(changes.length).toBeGreaterThan(1);
    expect(changes.map(({ payment: _payment, ...change }) => change)).toEqual(
      await ledger.listStateChanges(PAYMENT_ID),
    );
    for (const change of changes) expect(change.payment).toEqual(payment);
    expect(await ledger.listChanges(0, 1)).toEqual(changes.slice(0, 1));
    expect(await ledger.listChanges(changes[0]!.seq, 100)).toEqual(changes.slice(1));
    expect(await ledger.listChanges(changes.at(-1)!.seq, 100)).toEqual([]);
  });
});

describe('event storage and de-duplication', () => {
  it('stores the raw event once, with its outcome', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-5', statusCode: 5, changeTime: T2 });

    const result = await deliver(ledger, envelope);

    expect(result).toMatchObject({ outcome: 'applied', paymentId: PAYMENT_ID, stateChanged: true });
    const rawBody = JSON.stringify(envelope);
    expect(await ledger.getEvent('evt-5')).toMatchObject({
      eventId: 'evt-5',
      source: 'webhook',
      type: 'payment.pending_capture',
      keyId: 'k',
      signature: 's',
      rawBody,
      rawBytes: Buffer.byteLength(rawBody),
      outcome: 'applied',
      paymentId: PAYMENT_ID,
      statusCode: 5,
      changeTime: T2,
      deliveries: 1,
      receivedAt: NOW,
    });
    expect((await ledger.listPaymentEvents(PAYMENT_ID)).map((e) => e.eventId)).toEqual(['evt-5']);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      stage: 'authorised',
      statusCode: 5,
      status: 'PENDING_CAPTURE',
      statusCategory: 'PENDING_MERCHANT',
      changeTime: T2,
      amount: PAYMENT_AMOUNT,
      currency: 'EUR',
      merchantReference: 'test01',
      isAuthorized: true,
      lastSource: 'webhook',
      eventCount: 1,
    });
  });

  it('answers a re-delivered event id as duplicate, counting the delivery and leaving the payment alone', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-5', statusCode: 5, changeTime: T2 });
    await deliver(ledger, envelope);
    const storedBefore = await ledger.getEvent('evt-5');
    const paymentBefore = await ledger.getPayment(PAYMENT_ID);
    clock += 60_000;

    const result = await deliver(ledger, envelope, { receivedAt: NOW + 60_000 });

    expect(result).toMatchObject({ outcome: 'duplicate', paymentId: PAYMENT_ID, stateChanged: false });
    expect(await ledger.getEvent('evt-5')).toEqual({ ...storedBefore, deliveries: 2 });
    expect(await ledger.getPayment(PAYMENT_ID)).toEqual(paymentBefore);
    expect(await ledger.listStateChanges(PAYMENT_ID)).toHaveLength(1);
  });

  it('gates on the event id alone: a re-used id carrying another status changes nothing', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, paymentEvent({ eventId: 'evt-1', statusCode: 5, changeTime: T2 }));
    const paymentBefore = await ledger.getPayment(PAYMENT_ID);
    clock += 60_000;

    const result = await deliver(ledger, paymentEvent({ eventId: 'evt-1', statusCode: 9, changeTime: T4 }));

    expect(result.outcome).toBe('duplicate');
    expect(await ledger.getPayment(PAYMENT_ID)).toEqual(paymentBefore);
    expect(await ledger.getEvent('evt-1')).toMatchObject({
      statusCode: 5,
      outcome: 'applied',
      deliveries: 2,
    });
  });

  it('treats the held state re-sent under a new envelope id as duplicate, storing its own event row', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, paymentEvent({ eventId: 'evt-a', statusCode: 5, changeTime: T2 }));
    const paymentBefore = await ledger.getPayment(PAYMENT_ID);
    clock += 60_000;

    const result = await deliver(ledger, paymentEvent({ eventId: 'evt-b', statusCode: 5, changeTime: T2 }));

    expect(result).toMatchObject({ outcome: 'duplicate', paymentId: PAYMENT_ID, stateChanged: false });
    expect(await ledger.getEvent('evt-b')).toMatchObject({
      outcome: 'duplicate',
      paymentId: PAYMENT_ID,
      statusCode: 5,
      deliveries: 1,
    });
    expect(await ledger.getEvent('evt-a')).toMatchObject({ outcome: 'applied', deliveries: 1 });
    expect(await ledger.getPayment(PAYMENT_ID)).toEqual({ ...paymentBefore, eventCount: 2 });
    expect(await ledger.listStateChanges(PAYMENT_ID)).toHaveLength(1);
  });

  it('does not treat the same statusCode with another change time as a duplicate', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, paymentEvent({ eventId: 'evt-a', statusCode: 5, changeTime: T2 }));

    const result = await deliver(ledger, paymentEvent({ eventId: 'evt-b', statusCode: 5, changeTime: T3 }));

    expect(result.outcome).toBe('applied');
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ changeTime: T3, stage: 'authorised' });
  });
});

describe('any ordering of one payment’s events ends in the same state', () => {
  /** Delivers every sequence in turn (each on its own payment id). */
  async function runOrderings(ledger: Ledger, sequences: Envelope[][]): Promise<void> {
    for (const sequence of sequences) {
      for (const envelope of sequence) await deliver(ledger, envelope);
    }
  }

  async function referenceState(ledger: Ledger, steps: readonly Step[]) {
    const paymentId = 'reference_0';
    for (const step of steps) await deliver(ledger, stepEvent(paymentId, step));
    return portableStateOf(await ledger.getPayment(paymentId));
  }

  /** Every event id of the payment's sequence is stored exactly once; redelivered ids count their deliveries. */
  async function storageProblems(
    ledger: Ledger,
    paymentId: string,
    envelopes: Envelope[],
  ): Promise<string[]> {
    const stored = await ledger.listPaymentEvents(paymentId);
    const expectedIds = [...new Set(envelopes.map((e) => e.id))].sort();
    const problems: string[] = [];
    const storedIds = stored.map((e) => e.eventId).sort();
    if (JSON.stringify(storedIds) !== JSON.stringify(expectedIds)) {
      problems.push(`stored ${storedIds.join(',')} instead of ${expectedIds.join(',')}`);
    }
    for (const event of stored) {
      const deliveries = envelopes.filter((e) => e.id === event.eventId).length;
      if (event.deliveries !== deliveries) problems.push(`${event.eventId}: deliveries ${event.deliveries}`);
    }
    return problems;
  }

  /**
   * Checks every sequence's payment against the in-order reference. `standing` lists orderings whose stage,
   * statusCode, status or change time differ, or whose events were not stored exactly once; `row` lists
   * orderings whose payment row (minus timestamps) differs in any field. Reported as a count plus the first
   * five, so a failure stays readable.
   */
  async function orderingProblems(
    ledger: Ledger,
    reference: ReturnType<typeof portableStateOf>,
    sequences: Envelope[][],
  ) {
    const standing: string[] = [];
    const row: string[] = [];
    for (const [i, envelopes] of sequences.entries()) {
      const paymentId = orderingPaymentId(i);
      const label = envelopes.map((e) => e.id.slice(e.id.indexOf('/') + 1).replace(/@\d+/, '')).join('→');
      const state = portableStateOf(await ledger.getPayment(paymentId));
      const summary = (s: typeof state) => [s?.stage, s?.statusCode, s?.status, s?.changeTime].join(' ');
      if (summary(state) !== summary(reference)) standing.push(`${label}: ${summary(state)}`);
      for (const problem of await storageProblems(ledger, paymentId, envelopes)) {
        standing.push(`${label}: ${problem}`);
      }
      const diff = differences(reference ?? {}, state);
      if (diff.length) row.push(`${label}: ${diff.join('; ')}`);
    }
    const report = (list: string[]) => ({ count: list.length, first: list.slice(0, 5) });
    return { standing: report(standing), row: report(row) };
  }

  const none = { count: 0, first: [] };

  // BUG (reported): the `row` expectation fails on capturedTotal alone. capturedTotal is set only when
  // statusCode 9 itself is applied; when 9 arrives after the later 81 or 8 it is superseded, so the payment
  // ends refunded with capturedTotal 0, where the in-order run ends with capturedTotal 1500 (480 of 720 orders).
  it('typical lifecycle: all 720 orderings end refunded in the same payment row, each event stored once', async () => {
    const ledger = await buildLedger();
    const reference = await referenceState(ledger, LIFECYCLE);
    expect(reference).toMatchObject({ stage: 'refunded', statusCode: 8, capturedTotal: PAYMENT_AMOUNT });
    const orders = permutations(LIFECYCLE);
    expect(orders).toHaveLength(720);
    const sequences = orders.map((order, i) => order.map((step) => stepEvent(orderingPaymentId(i), step)));

    await runOrderings(ledger, sequences);

    const problems = await orderingProblems(ledger, reference, sequences);
    expect(problems.standing).toEqual(none);
    expect(problems.row).toEqual(none);
  }, 120_000);

  // BUG (reported, same cause as above): the `row` expectation fails on capturedTotal alone.
  it('typical lifecycle with duplicates mixed in: all 720 orderings end in the same row, each event stored once', async () => {
    const ledger = await buildLedger();
    const reference = await referenceState(ledger, LIFECYCLE);
    const sequences = permutations(LIFECYCLE).map((order, i) =>
      withDuplicates(orderingPaymentId(i), order, i),
    );

    await runOrderings(ledger, sequences);

    const problems = await orderingProblems(ledger, reference, sequences);
    expect(problems.standing).toEqual(none);
    expect(problems.row).toEqual(none);
  }, 120_000);

  it('failed lifecycle, with and without duplicates: every ordering ends rejected in the same row', async () => {
    const ledger = await buildLedger();
    const reference = await referenceState(ledger, FAILED_LIFECYCLE);
    expect(reference).toMatchObject({ stage: 'rejected', statusCode: 2, capturedTotal: 0, changeTime: T3 });
    const plain = permutations(FAILED_LIFECYCLE);
    const sequences = [...plain, ...plain].map((order, i) =>
      i < plain.length
        ? order.map((step) => stepEvent(orderingPaymentId(i), step))
        : withDuplicates(orderingPaymentId(i), order, i),
    );

    await runOrderings(ledger, sequences);

    const problems = await orderingProblems(ledger, reference, sequences);
    expect(problems.standing).toEqual(none);
    expect(problems.row).toEqual(none);
  });

  it('93 and 83 keep their standing in every ordering of their lifecycles', async () => {
    const ledger = await buildLedger();
    const refusedCapture: Step[] = [
      { statusCode: 5, changeTime: T2 },
      { statusCode: 91, changeTime: T3 },
      { statusCode: 93, changeTime: T4 },
    ];
    const refusedRefund: Step[] = [
      { statusCode: 5, changeTime: T2 },
      { statusCode: 9, changeTime: T3 },
      { statusCode: 81, changeTime: T4 },
      { statusCode: 83, changeTime: T5 },
    ];
    const captureOrders = permutations(refusedCapture);
    const refundOrders = permutations(refusedRefund);

    await runOrderings(
      ledger,
      [...captureOrders, ...refundOrders].map((order, i) =>
        order.map((step) => stepEvent(orderingPaymentId(i), step)),
      ),
    );

    const outcomes: string[] = [];
    for (const i of [...captureOrders, ...refundOrders].keys()) {
      const p = await ledger.getPayment(orderingPaymentId(i));
      outcomes.push(`${p?.stage} ${p?.statusCode} captured ${p?.capturedTotal}`);
    }
    expect(outcomes).toEqual([
      ...captureOrders.map(() => 'authorised 93 captured 0'),
      ...refundOrders.map(() => `captured 83 captured ${PAYMENT_AMOUNT}`),
    ]);
  });

  it('a refusal in the same second as its pending operation wins in every ordering (91/93, 81/83, 81/94, 61/63, 71/73)', async () => {
    const ledger = await buildLedger();
    // The platform replaces 91 by 9 or 93 "on the same operation id": one second can hold both.
    const cases: [standing: number, pending: number, refusal: number, expected: string][] = [
      [5, 91, 93, 'authorised 93'],
      [9, 81, 83, 'captured 83'],
      [9, 81, 94, 'captured 94'],
      [5, 61, 63, 'authorised 63'],
      [9, 71, 73, 'captured 73'],
    ];
    const orders = cases.flatMap(([standing, pending, refusal, expected]) =>
      permutations<Step>([
        { statusCode: standing, changeTime: T2 },
        { statusCode: pending, changeTime: T3 },
        { statusCode: refusal, changeTime: T3 },
      ]).map((order) => ({ order, expected })),
    );

    await runOrderings(
      ledger,
      orders.map(({ order }, i) => order.map((step) => stepEvent(orderingPaymentId(i), step))),
    );

    const outcomes: string[] = [];
    for (const i of orders.keys()) {
      const p = await ledger.getPayment(orderingPaymentId(i));
      outcomes.push(`${p?.stage} ${p?.statusCode}`);
    }
    expect(outcomes).toEqual(orders.map(({ expected }) => expected));
  });
});

/**
 * The order with, mixed in: a same-id re-delivery of one event (after its original) and a copy of another event
 * under a new envelope id (the platform's re-send), at positions that vary with i.
 */
function withDuplicates(paymentId: string, order: Step[], i: number): PaymentEnvelope[] {
  const sequence = order.map((step) => stepEvent(paymentId, step));
  const redelivered = order[i % order.length] as Step;
  const resent = order[(i * 5 + 1) % order.length] as Step;
  sequence.push(stepEvent(paymentId, redelivered));
  sequence.splice(i % (sequence.length + 1), 0, stepEvent(paymentId, resent, '#resent'));
  return sequence;
}

describe('transitions', () => {
  it('keeps a flag the event did not send as null ("not said"), one it sent as false as false', async () => {
    const ledger = await buildLedger();
    const envelope = stepEvent(PAYMENT_ID, LIFECYCLE[1]!);
    const so = envelope.payment.statusOutput;
    delete so.isAuthorized;
    delete so.isCancellable;
    await deliver(ledger, envelope);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      isAuthorized: null,
      isCancellable: null,
      isRefundable: false,
    });
  });

  it('records a superseded event without touching the payment or writing a state change', async () => {
    const ledger = await buildLedger();
    for (const step of [LIFECYCLE[0], LIFECYCLE[1], LIFECYCLE[3]] as Step[]) {
      await deliver(ledger, stepEvent(PAYMENT_ID, step));
    }
    const before = await ledger.getPayment(PAYMENT_ID);
    const changesBefore = await ledger.listStateChanges(PAYMENT_ID);
    clock += 60_000;

    const late = stepEvent(PAYMENT_ID, { statusCode: 91, changeTime: T3 });
    const result = await deliver(ledger, late);

    expect(result).toMatchObject({ outcome: 'superseded', paymentId: PAYMENT_ID, stateChanged: false });
    expect(await ledger.getEvent(late.id)).toMatchObject({
      outcome: 'superseded',
      statusCode: 91,
      changeTime: T3,
    });
    expect(await ledger.getPayment(PAYMENT_ID)).toEqual({ ...before, eventCount: 4 });
    expect(await ledger.listStateChanges(PAYMENT_ID)).toEqual(changesBefore);
  });

  it('does not leave a refunded payment for a newer authorisation', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, stepEvent(PAYMENT_ID, { statusCode: 8, changeTime: T6 }));

    const result = await deliver(ledger, stepEvent(PAYMENT_ID, { statusCode: 5, changeTime: T7 }));

    expect(result.outcome).toBe('superseded');
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ stage: 'refunded', statusCode: 8 });
  });

  it('records from and to of every applied change, pointing at its event', async () => {
    const ledger = await buildLedger();
    const envelopes = [LIFECYCLE[0], LIFECYCLE[1], LIFECYCLE[2], LIFECYCLE[3]].map((step) =>
      stepEvent(PAYMENT_ID, step as Step),
    );
    for (const envelope of envelopes) await deliver(ledger, envelope);

    const changes = await ledger.listStateChanges(PAYMENT_ID);

    const seqs = await Promise.all(envelopes.map(async (e) => (await ledger.getEvent(e.id))?.seq));
    expect(
      changes.map(({ fromStage, toStage, fromStatusCode, toStatusCode, eventSeq }) => ({
        fromStage,
        toStage,
        fromStatusCode,
        toStatusCode,
        eventSeq,
      })),
    ).toEqual([
      { fromStage: null, toStage: 'created', fromStatusCode: null, toStatusCode: 0, eventSeq: seqs[0] },
      { fromStage: 'created', toStage: 'authorised', fromStatusCode: 0, toStatusCode: 5, eventSeq: seqs[1] },
      {
        fromStage: 'authorised',
        toStage: 'capture_pending',
        fromStatusCode: 5,
        toStatusCode: 91,
        eventSeq: seqs[2],
      },
      {
        fromStage: 'capture_pending',
        toStage: 'captured',
        fromStatusCode: 91,
        toStatusCode: 9,
        eventSeq: seqs[3],
      },
    ]);
    changes.forEach((change, i) => expect(change.cause).toContain(envelopes[i]?.id));
  });

  it('keeps the payment authorised when a capture is refused (93 after 91)', async () => {
    const ledger = await buildLedger();
    for (const step of [LIFECYCLE[0], LIFECYCLE[1], LIFECYCLE[2]] as Step[]) {
      await deliver(ledger, stepEvent(PAYMENT_ID, step));
    }

    const result = await deliver(ledger, stepEvent(PAYMENT_ID, { statusCode: 93, changeTime: T4 }));

    expect(result).toMatchObject({ outcome: 'applied', stateChanged: true });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      stage: 'authorised',
      statusCode: 93,
      capturedTotal: 0,
    });
  });

  it('keeps the payment captured when a refund is refused (83 after 81)', async () => {
    const ledger = await buildLedger();
    for (const step of LIFECYCLE.slice(0, 5)) await deliver(ledger, stepEvent(PAYMENT_ID, step));

    const result = await deliver(ledger, stepEvent(PAYMENT_ID, { statusCode: 83, changeTime: T6 }));

    expect(result).toMatchObject({ outcome: 'applied', stateChanged: true });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      stage: 'captured',
      statusCode: 83,
      capturedTotal: PAYMENT_AMOUNT,
      refundedTotal: 0,
    });
  });

  it.each<[number, string | null]>([
    [1000, 'COMPLETED'],
    [42, 'COMPLETED'],
    [1000, null],
  ])('records unknown statusCode %i (%p) as unknown_code and never as captured', async (code, category) => {
    const ledger = await buildLedger();
    await deliver(ledger, paymentEvent({ eventId: 'evt-5', statusCode: 5, changeTime: T2 }));
    const unknown = paymentEvent({
      eventId: 'evt-x',
      statusCode: code,
      changeTime: T3,
      statusCategory: category,
    });

    const result = await deliver(ledger, unknown);

    expect(result).toMatchObject({ outcome: 'unknown_code', paymentId: PAYMENT_ID });
    expect(await ledger.getEvent('evt-x')).toMatchObject({ outcome: 'unknown_code', statusCode: code });
    const payment = await ledger.getPayment(PAYMENT_ID);
    expect(payment).toMatchObject({ stage: 'unknown', statusCode: code, capturedTotal: 0, uncertain: true });
  });

  it('records an unknown statusCode as the first event of a payment without making it captured', async () => {
    const ledger = await buildLedger();

    const result = await deliver(
      ledger,
      paymentEvent({ eventId: 'evt-x', statusCode: 1000, changeTime: T2, statusCategory: 'COMPLETED' }),
    );

    expect(result.outcome).toBe('unknown_code');
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ stage: 'unknown', capturedTotal: 0 });
  });
});

describe('the re-check a refund event asks for', () => {
  const RECHECK_MS = 60_000; // DEFAULT_CHECK_POLICY.refundRecheckMs
  const captured = async (ledger: Ledger) => {
    for (const step of LIFECYCLE.slice(0, 4)) await deliver(ledger, stepEvent(PAYMENT_ID, step));
  };
  const refund = (amount: number) =>
    refundEvent({ eventId: `r-${amount}`, refundId: '3254564310_1', amount, changeTime: T5 });

  it("stands through the payment's own refunded webhook, even on a payment given up on meanwhile", async () => {
    const ledger = await buildLedger();
    await captured(ledger);
    clock += 10 * 24 * 3_600_000;
    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[4]!)); // 81, past RECONCILE_GIVE_UP: given up
    expect((await ledger.getPayment(PAYMENT_ID))?.staleAt).toBe(clock);
    await deliver(ledger, refund(1500));
    const due = clock + RECHECK_MS;
    clock += 1_000;

    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[5]!)); // 8: conclusive

    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      stage: 'refunded',
      staleAt: null,
      refundCheckAt: due,
      nextCheckAt: due,
    });
  });

  it('is answered only by a poll made once it was due, not by one fetched before the refund', async () => {
    const ledger = await buildLedger();
    await captured(ledger);
    await deliver(ledger, refund(500));
    const due = clock + RECHECK_MS;
    clock += 1_000;

    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[3]!, '#early-poll'), { source: 'poll' });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundCheckAt: due, nextCheckAt: due });

    clock = due;
    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[3]!, '#due-poll'), { source: 'poll' });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      refundCheckAt: null,
      nextCheckAt: null,
      checkAttempts: 0,
    });
  });
});

describe('refunds', () => {
  const refund1 = (eventId: string, amount = 500, changeTime = T5) =>
    refundEvent({ eventId, refundId: '3254564310_1', amount, changeTime });
  const refund2 = (eventId: string, amount = 700, changeTime = T6) =>
    refundEvent({ eventId, refundId: '3254564310_2', amount, changeTime });
  const captured = (eventId = 'evt-9') => paymentEvent({ eventId, statusCode: 9, changeTime: T4 });

  it('counts two refunds of different amounts in the refunded total', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, captured());

    const results = [await deliver(ledger, refund1('evt-r1')), await deliver(ledger, refund2('evt-r2'))];

    expect(results).toEqual([
      expect.objectContaining({ outcome: 'applied', paymentId: PAYMENT_ID, stateChanged: true }),
      expect.objectContaining({ outcome: 'applied', paymentId: PAYMENT_ID, stateChanged: true }),
    ]);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 1200, stage: 'captured' });
    expect(await ledger.listRefunds(PAYMENT_ID)).toEqual([
      expect.objectContaining({ id: '3254564310_1', paymentId: PAYMENT_ID, amount: 500, stage: 'refunded' }),
      expect.objectContaining({ id: '3254564310_2', paymentId: PAYMENT_ID, amount: 700, stage: 'refunded' }),
    ]);
    expect(await ledger.getEvent('evt-r2')).toMatchObject({
      refundId: '3254564310_2',
      paymentId: PAYMENT_ID,
    });
  });

  it('counts two refunds whose events look alike (same amount, same change time)', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, captured());

    await deliver(ledger, refund1('evt-r1', 500, T5));
    await deliver(ledger, refund2('evt-r2', 500, T5));

    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 1000 });
  });

  it('does not count a refund re-sent under a new event id twice', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, captured());
    await deliver(ledger, refund1('evt-r1'));

    const resent = await deliver(ledger, refund1('evt-r1-resent'));
    const redelivered = await deliver(ledger, refund1('evt-r1'));
    const later = await deliver(ledger, refund1('evt-r1-later', 500, T7));

    expect([resent.outcome, redelivered.outcome, later.outcome]).toEqual([
      'duplicate',
      'duplicate',
      'applied',
    ]);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 500 });
    expect(await ledger.listRefunds(PAYMENT_ID)).toHaveLength(1);
    expect(await ledger.getEvent('evt-r1-resent')).toMatchObject({
      outcome: 'duplicate',
      refundId: '3254564310_1',
    });
  });

  it('links and totals a refund that arrived before its payment once the payment arrives', async () => {
    const ledger = await buildLedger();

    const early = await deliver(ledger, refund1('evt-r1'));
    expect(early).toMatchObject({ outcome: 'applied', paymentId: null });
    expect(await ledger.getPayment(PAYMENT_ID)).toBeUndefined();

    await deliver(ledger, captured());

    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 500, stage: 'captured' });
    expect(await ledger.listRefunds(PAYMENT_ID)).toEqual([
      expect.objectContaining({ id: '3254564310_1', paymentId: PAYMENT_ID }),
    ]);
    expect(await ledger.getEvent('evt-r1')).toMatchObject({ paymentId: PAYMENT_ID });
    expect((await ledger.listPaymentEvents(PAYMENT_ID)).map((e) => e.eventId)).toEqual(['evt-r1', 'evt-9']);

    await deliver(ledger, refund2('evt-r2'));
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 1200 });
  });

  // BUG (reported): a refund that arrives before its payment is linked by merchantReference to another payment
  // of the same order (an earlier attempt with another id base), and is never re-linked when its own payment
  // (same id base as the refund) arrives.
  it('links an early refund to the payment of its own id base, not to another attempt of the same order', async () => {
    const ledger = await buildLedger();
    const otherAttempt = '1111111111_0';
    await deliver(
      ledger,
      paymentEvent({ eventId: 'evt-other', paymentId: otherAttempt, statusCode: 2, changeTime: T1 }),
    );

    await deliver(ledger, refund1('evt-r1'));
    await deliver(ledger, captured());

    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 500 });
    expect(await ledger.getPayment(otherAttempt)).toMatchObject({ refundedTotal: 0 });
  });

  it('counts a refund only once it is refunded (81 then 8)', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, captured());

    await deliver(
      ledger,
      refundEvent({ eventId: 'r-81', refundId: '3254564310_1', amount: 500, changeTime: T5, statusCode: 81 }),
    );
    const pending = await ledger.getPayment(PAYMENT_ID);
    await deliver(
      ledger,
      refundEvent({ eventId: 'r-8', refundId: '3254564310_1', amount: 500, changeTime: T6 }),
    );

    expect(pending).toMatchObject({ refundedTotal: 0 });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ refundedTotal: 500 });
  });
});

describe('events that never touch a payment', () => {
  it('ignores a portal test send (payment.test, payment 9999_9)', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({
      eventId: 'evt-test',
      type: 'payment.test',
      paymentId: '9999_9',
      statusCode: 0,
      changeTime: T1,
    });

    const result = await deliver(ledger, envelope);

    expect(result).toMatchObject({ outcome: 'ignored', paymentId: null, stateChanged: false });
    expect(await ledger.getEvent('evt-test')).toMatchObject({
      outcome: 'ignored',
      rawBody: JSON.stringify(envelope),
    });
    expect(await ledger.getPayment('9999_9')).toBeUndefined();
  });

  it('ignores payment 9999_9 whatever the event type', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({
      eventId: 'evt-test',
      paymentId: '9999_9',
      statusCode: 9,
      changeTime: T1,
    });

    expect((await deliver(ledger, envelope)).outcome).toBe('ignored');
    expect(await ledger.getPayment('9999_9')).toBeUndefined();
  });

  it.each(['payout', 'token', 'paymentLink'])('ignores a %s payload', async (key) => {
    const ledger = await buildLedger();
    const source = paymentEvent({ eventId: `evt-${key}`, statusCode: 9, changeTime: T1 });
    const { payment, ...rest } = source;
    const envelope = { ...rest, type: `${key.toLowerCase()}.paid`, [key]: payment };

    const result = await deliver(ledger, envelope);

    expect(result).toMatchObject({ outcome: 'ignored', paymentId: null });
    expect(await ledger.getEvent(`evt-${key}`)).toMatchObject({ outcome: 'ignored', paymentId: null });
    expect(await ledger.getPayment(PAYMENT_ID)).toBeUndefined();
  });
});

describe('invalid payloads', () => {
  it.each<[string, (so: StatusOutput) => void]>([
    ['missing', (so) => delete so.statusCode],
    ['a string', (so) => (so.statusCode = '9')],
  ])('records a payment whose statusCode is %s as invalid, naming the field', async (_name, breakIt) => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-bad', statusCode: 9, changeTime: T4 });
    breakIt(envelope.payment.statusOutput);

    const result = await deliver(ledger, envelope);

    expect(result).toMatchObject({ outcome: 'invalid', paymentId: null, stateChanged: false });
    expect(result.reason).toContain('payment.statusOutput.statusCode');
    expect(await ledger.getEvent('evt-bad')).toMatchObject({
      outcome: 'invalid',
      reason: expect.stringContaining('payment.statusOutput.statusCode'),
      rawBody: JSON.stringify(envelope),
    });
    expect(await ledger.getPayment(PAYMENT_ID)).toBeUndefined();
  });

  it('records a payment whose id holds a lone surrogate as invalid: stored, it would not match', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-bad', statusCode: 9, changeTime: T4 });
    envelope.payment.id = '3254564310\ud800_0';

    const result = await deliver(ledger, envelope);

    expect(result).toMatchObject({ outcome: 'invalid', paymentId: null });
    expect(result.reason).toBe('payment.id: not well-formed Unicode text (a lone surrogate)');
    expect(await ledger.getEvent('evt-bad')).toMatchObject({ outcome: 'invalid' });
  });

  it('reads a merchant reference with a lone surrogate as absent; the status still counts', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({
      eventId: 'evt-cut',
      statusCode: 9,
      changeTime: T4,
      merchantReference: 'Bestellung \ud83c',
    });

    expect(await deliver(ledger, envelope)).toMatchObject({ outcome: 'applied', paymentId: PAYMENT_ID });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ stage: 'captured', merchantReference: null });
  });

  it('records a refund without a statusCode as invalid, naming the field', async () => {
    const ledger = await buildLedger();
    const envelope = refundEvent({
      eventId: 'evt-bad',
      refundId: '3254564310_1',
      amount: 500,
      changeTime: T5,
    });
    delete envelope.refund.statusOutput.statusCode;

    const result = await deliver(ledger, envelope);

    expect(result.outcome).toBe('invalid');
    expect(result.reason).toContain('refund.statusOutput.statusCode');
  });

  it('processes a fixed event re-applied under the same event id', async () => {
    const ledger = await buildLedger();
    const broken = paymentEvent({ eventId: 'evt-1', statusCode: 9, changeTime: T4 });
    delete broken.payment.statusOutput.statusCode;
    await deliver(ledger, broken);

    const fixed = paymentEvent({ eventId: 'evt-1', statusCode: 9, changeTime: T4 });
    const result = await deliver(ledger, fixed);

    expect(result).toMatchObject({ outcome: 'applied', paymentId: PAYMENT_ID, stateChanged: true });
    expect(await ledger.getEvent('evt-1')).toMatchObject({
      outcome: 'applied',
      rawBody: JSON.stringify(fixed),
      statusCode: 9,
    });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ stage: 'captured', eventCount: 1 });
  });
});

describe('recordFailedEvent', () => {
  it('stores an event that exhausted its attempts as failed, with the error', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-f', statusCode: 9, changeTime: T4 });

    await ledger.recordFailedEvent(record(envelope), 'SqliteError: disk I/O error');

    expect(await ledger.getEvent('evt-f')).toMatchObject({
      outcome: 'failed',
      reason: 'SqliteError: disk I/O error',
      rawBody: JSON.stringify(envelope),
      keyId: 'k',
      signature: 's',
    });
    expect(await ledger.getPayment(PAYMENT_ID)).toBeUndefined();
  });

  it('does not overwrite an event that was already applied', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-1', statusCode: 9, changeTime: T4 });
    await deliver(ledger, envelope);
    const stored = await ledger.getEvent('evt-1');

    await ledger.recordFailedEvent(record(envelope), 'Error: late failure');

    expect(await ledger.getEvent('evt-1')).toEqual(stored);
  });

  it('lets a failed event be processed again under the same event id', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-1', statusCode: 9, changeTime: T4 });
    await ledger.recordFailedEvent(record(envelope), 'Error: busy');

    const result = await deliver(ledger, envelope);

    expect(result.outcome).toBe('applied');
    expect(await ledger.getEvent('evt-1')).toMatchObject({ outcome: 'applied' });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ stage: 'captured' });
  });
});

describe('purgeRawBodies', () => {
  it('clears raw bodies received before the cutoff and keeps the outcome rows', async () => {
    const ledger = await buildLedger();
    const old = paymentEvent({ eventId: 'evt-old', statusCode: 5, changeTime: T2 });
    const recent = paymentEvent({ eventId: 'evt-new', statusCode: 9, changeTime: T4 });
    await deliver(ledger, old, { receivedAt: 1_000 });
    await deliver(ledger, recent, { receivedAt: 5_000 });
    const oldBefore = await ledger.getEvent('evt-old');

    const cleared = await ledger.purgeRawBodies(3_000);

    expect(cleared).toBe(1);
    expect(await ledger.getEvent('evt-old')).toEqual({ ...oldBefore, rawBody: null });
    expect(await ledger.getEvent('evt-new')).toMatchObject({
      rawBody: JSON.stringify(recent),
      outcome: 'applied',
    });
    expect(await ledger.purgeRawBodies(3_000)).toBe(0);
  });

  it('still de-duplicates an event whose raw body was purged', async () => {
    const ledger = await buildLedger();
    const envelope = paymentEvent({ eventId: 'evt-old', statusCode: 5, changeTime: T2 });
    await deliver(ledger, envelope, { receivedAt: 1_000 });
    await ledger.purgeRawBodies(3_000);

    const result = await deliver(ledger, envelope, { receivedAt: 10_000 });

    expect(result.outcome).toBe('duplicate');
    expect(await ledger.getEvent('evt-old')).toMatchObject({ rawBody: null, deliveries: 2 });
  });
});

describe('rebuild', () => {
  const REBUILT_CAUSE = 'rebuild: recomputed from the stored events';

  /** Authorised from its events; the row set back to created, as a lost write would leave it. */
  async function ledgerWithLostStatus(): Promise<Ledger> {
    const ledger = await buildLedger();
    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[0]!));
    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[1]!));
    await runLedgerSql(
      await ledgerLocation('ledger'),
      "UPDATE payments SET status_code = 0, status = 'CREATED', stage = 'created', rank = 0, change_time = ? WHERE id = ?",
      [T1, PAYMENT_ID],
    );
    return ledger;
  }

  const capture = () => stepEvent(PAYMENT_ID, LIFECYCLE[3]!);

  /** A rebuild (not a dry run) with a worker's write landing just before `phase`. */
  const rebuildWriting = (ledger: Ledger, phase: 'compare' | 'correct', write: () => Promise<unknown>) =>
    ledger.rebuild({
      dryRun: false,
      beforePhase: async (next) => {
        if (next === phase) await write();
      },
    });
  const LEFT_ALONE = { differences: [], changed: [PAYMENT_ID], applied: false };

  it('sets a payment to the state its events give, rank included, with a state change saying so', async () => {
    const ledger = await ledgerWithLostStatus();
    clock += 60_000;

    const report = await ledger.rebuild({ dryRun: false });

    expect(report).toMatchObject({ checked: 1, changed: [], applied: true });
    expect(report.differences).toEqual([
      {
        paymentId: PAYMENT_ID,
        ledger: expect.objectContaining({ statusCode: 0, stage: 'created' }),
        rebuilt: expect.objectContaining({ statusCode: 5, stage: 'authorised' }),
      },
    ]);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      statusCode: 5,
      status: 'PENDING_CAPTURE',
      stage: 'authorised',
      rank: 20,
      changeTime: T2,
      updatedAt: clock,
    });
    expect((await ledger.listStateChanges(PAYMENT_ID)).at(-1)).toMatchObject({
      fromStage: 'created',
      toStage: 'authorised',
      cause: REBUILT_CAUSE,
    });
    expect((await ledger.rebuild({ dryRun: true })).differences).toEqual([]);
  });

  it('leaves a payment alone when an event for it lands after the recomputation read the events', async () => {
    const ledger = await ledgerWithLostStatus();

    const report = await rebuildWriting(ledger, 'compare', () => deliver(ledger, capture()));

    expect(report).toMatchObject(LEFT_ALONE);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ statusCode: 9, stage: 'captured' });
    expect((await ledger.listStateChanges(PAYMENT_ID)).map((change) => change.cause)).not.toContain(
      REBUILT_CAUSE,
    );
  });

  it('corrects more payments than one transaction takes (500), every one of them', async () => {
    const ledger = await buildLedger();
    const ids = Array.from({ length: 501 }, (_, i) => orderingPaymentId(i));
    await Promise.all(ids.map((id) => deliver(ledger, stepEvent(id, LIFECYCLE[1]!))));
    await runLedgerSql(
      await ledgerLocation('ledger'),
      "UPDATE payments SET status_code = 0, status = 'CREATED', stage = 'created', rank = 0, change_time = ?",
      [T1],
    );

    const report = await ledger.rebuild({ dryRun: false });

    expect(report).toMatchObject({ checked: 501, changed: [], applied: true });
    expect(report.differences).toHaveLength(501);
    expect((await ledger.counts()).paymentsByStage).toEqual({ authorised: 501 });
  });

  it('leaves a payment alone when an event that changes no row lands after the scan (a superseded one)', async () => {
    const ledger = await buildLedger();
    for (const step of LIFECYCLE.slice(0, 4)) await deliver(ledger, stepEvent(PAYMENT_ID, step));
    await runLedgerSql(
      await ledgerLocation('ledger'),
      "UPDATE payments SET status_code = 8, status = 'REFUNDED', stage = 'refunded', rank = 60 WHERE id = ?",
      [PAYMENT_ID],
    );
    const refundRequested = stepEvent(PAYMENT_ID, LIFECYCLE[4]!);

    const report = await rebuildWriting(ledger, 'correct', () => deliver(ledger, refundRequested));

    expect((await ledger.getEvent(refundRequested.id))?.outcome).toBe('superseded');
    expect(report).toMatchObject(LEFT_ALONE);
    // Corrected by the next run, with the event that came in: refund requested, not captured.
    expect((await ledger.rebuild({ dryRun: true })).differences).toEqual([
      expect.objectContaining({ rebuilt: expect.objectContaining({ statusCode: 81 }) }),
    ]);
  });

  it('keeps the batches written before a failed one, and names the payments not corrected', async () => {
    const ledger = await buildLedger();
    const ids = Array.from({ length: 501 }, (_, i) => orderingPaymentId(i));
    await Promise.all(ids.map((id) => deliver(ledger, stepEvent(id, LIFECYCLE[1]!))));
    const where = await ledgerLocation('ledger');
    await runLedgerSql(
      where,
      "UPDATE payments SET status_code = 0, status = 'CREATED', stage = 'created', rank = 0",
    );
    // The last payment by id, alone in the second batch, cannot be written.
    const refused = ids.at(-1)!;
    for (const statement of TEST_BACKEND === 'sqlite'
      ? [
          `CREATE TRIGGER refuse BEFORE UPDATE ON payments WHEN OLD.id = '${refused}' ` +
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ]
      : [
          "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql",
          `CREATE TRIGGER refuse BEFORE UPDATE ON payments FOR EACH ROW WHEN (OLD.id = '${refused}') EXECUTE FUNCTION refuse()`,
        ])
      await runLedgerSql(where, statement);

    const report = await ledger.rebuild({ dryRun: false });

    expect(report.failed).toEqual({
      error: expect.stringContaining('refused by the test'),
      paymentIds: [refused],
    });
    expect(report).toMatchObject({ applied: true, changed: [] });
    expect(report.differences).toHaveLength(500);
    expect((await ledger.counts()).paymentsByStage).toEqual({ authorised: 500, created: 1 });
  });

  it('leaves a payment alone when a failed event is retried while it scans (the event keeps its seq)', async () => {
    const ledger = await buildLedger();
    await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[1]!));
    const failed = capture();
    await ledger.recordFailedEvent(record(failed), 'Error: busy');

    const report = await rebuildWriting(ledger, 'compare', () => deliver(ledger, failed));

    expect(report).toMatchObject(LEFT_ALONE);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      statusCode: 9,
      capturedTotal: PAYMENT_AMOUNT,
    });
  });

  it('leaves a payment alone when its state moves between the comparison and the correction', async () => {
    const ledger = await ledgerWithLostStatus();

    const report = await rebuildWriting(ledger, 'correct', () => deliver(ledger, capture()));

    expect(report).toMatchObject(LEFT_ALONE);
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({ statusCode: 9, stage: 'captured' });
    const after = await ledger.rebuild({ dryRun: true });
    expect(after).toMatchObject({ differences: [], changed: [] });
  });
});

describe('a payment written between two events by the same ledger handle', () => {
  // On SQLite the status worker keeps the rows its batches wrote (sqlite-payment-cache.ts): a release written on
  // the same connection outside a batch must still be seen by the next event.
  it('a release is seen by the refund that follows it', async () => {
    const ledger = await buildLedger();
    for (const step of LIFECYCLE.slice(0, 4)) await deliver(ledger, stepEvent(PAYMENT_ID, step));
    expect((await ledger.releasePayment(PAYMENT_ID, 'captured')).outcome).toBe('released');
    const refunded = await deliver(ledger, stepEvent(PAYMENT_ID, LIFECYCLE[5] as Step));
    expect(refunded).toMatchObject({ outcome: 'applied', reversedAfterRelease: true });
    expect(await ledger.getPayment(PAYMENT_ID)).toMatchObject({
      stage: 'refunded',
      reversedAfterRelease: true,
    });
  });
});

describe('several ledgers on one store (one SQLite file, one PostgreSQL database)', () => {
  /** A payment's status events plus two refunds (300 and 200), all under the order reference of its base. */
  function paymentWithRefunds(base: string, steps: readonly Step[]): Envelope[] {
    const merchantReference = `order-${base}`;
    const paymentId = `${base}_0`;
    const refund = (n: number, amount: number, changeTime: string) =>
      refundEvent({
        eventId: `${base}_${n}/8`,
        refundId: `${base}_${n}`,
        amount,
        changeTime,
        merchantReference,
      });
    return [
      ...steps.map((step) => stepEvent(paymentId, step, '', merchantReference)),
      refund(1, 300, T5),
      refund(2, 200, T6),
    ];
  }

  /** Full lifecycles and refunds of three payments, with re-deliveries and re-sends, in a fixed shuffled order. */
  function mixedEvents(): Envelope[] {
    const envelopes: Envelope[] = [];
    for (const base of ['5100000001', '5100000002', '5100000003']) {
      const events = paymentWithRefunds(base, LIFECYCLE);
      // A same-id re-delivery of the capture and of a refund, and a re-send of the refunded state.
      envelopes.push(...events, events[3] as Envelope, events[7] as Envelope);
      envelopes.push(stepEvent(`${base}_0`, LIFECYCLE[5] as Step, '#resent', `order-${base}`));
    }
    return shuffled(envelopes, 20240105);
  }

  const paymentIds = ['5100000001_0', '5100000002_0', '5100000003_0'];

  it('two ledgers applying interleaved events end in the same state as one ledger', async () => {
    const envelopes = mixedEvents();
    const workerA = await buildLedger();
    const workerB = await buildLedger();
    const single = await buildLedger('single');

    const twoResults: ApplyResult[] = [];
    const oneResults: ApplyResult[] = [];
    for (const [i, envelope] of envelopes.entries()) {
      twoResults.push(await deliver(i % 2 === 0 ? workerA : workerB, envelope));
      oneResults.push(await deliver(single, envelope));
    }

    expect(twoResults).toEqual(oneResults);
    for (const paymentId of paymentIds) {
      const [viaA, viaB, viaSingle] = await Promise.all([
        workerA.getPayment(paymentId),
        workerB.getPayment(paymentId),
        single.getPayment(paymentId),
      ]);
      expect(viaSingle).toMatchObject({ stage: 'refunded', refundedTotal: 500 });
      expect(viaA).toEqual(viaSingle);
      expect(viaB).toEqual(viaSingle);
      expect(await workerB.listPaymentEvents(paymentId)).toEqual(await single.listPaymentEvents(paymentId));
      expect(await workerA.listStateChanges(paymentId)).toEqual(await single.listStateChanges(paymentId));
      expect(await workerB.listRefunds(paymentId)).toEqual(await single.listRefunds(paymentId));
    }
  });

  /**
   * A worker process, run from source with tsx (installed with drizzle-kit). It opens the ledger, reports `ready`,
   * waits for `go` on stdin so that both apply at the same time, applies its events (reading each from its raw
   * body, as the worker does) and prints the outcomes.
   */
  const APPLIER = `
    const fs = require('node:fs');
    const { openLedger, readWebhookEvent } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/ledger/index.ts'))});
    const [locationJson, inputPath] = process.argv.slice(1);
    (async () => {
      const ledger = await openLedger(JSON.parse(locationJson), { now: () => ${NOW} });
      const records = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
      process.stdout.write('ready\\n');
      await new Promise((resolve) => process.stdin.once('data', resolve));
      const outcomes = [];
      for (const event of records) {
        const result = await ledger.apply({ event, reading: readWebhookEvent(JSON.parse(event.rawBody)) });
        outcomes.push(result.outcome);
      }
      await ledger.close();
      process.stdout.write(JSON.stringify(outcomes) + '\\n');
      process.exit(0);
    })().catch((error) => { console.error(error); process.exit(1); });
  `;

  function startApplier(location: LedgerLocation, records: EventRecord[], name: string) {
    const inputPath = path.join(dir, `${name}.json`);
    writeFileSync(inputPath, JSON.stringify(records));
    const child: ChildProcessWithoutNullStreams = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', APPLIER, JSON.stringify(location), inputPath],
      { cwd: REPO_ROOT, stdio: 'pipe' },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.startsWith('ready\n')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before ready: ${stderr}`)));
    });
    const done = new Promise<string[]>((resolve, reject) => {
      child.once('exit', (code) => {
        if (code !== 0) return reject(new Error(`${name} exited with ${code}: ${stderr}`));
        resolve(JSON.parse(stdout.slice('ready\n'.length)) as string[]);
      });
    });
    ready.catch(() => undefined);
    return { child, ready, done, go: () => child.stdin.write('go\n') };
  }

  it('two worker processes applying the same events concurrently end in the same state as one ledger', async () => {
    const envelopes: Envelope[] = [];
    for (let n = 0; n < 20; n++)
      envelopes.push(...paymentWithRefunds(String(5200000000 + n), LIFECYCLE.slice(0, 4)));
    const records = envelopes.map((envelope) => record(envelope));
    // Migrated here first: two processes migrating one fresh file at the same moment can fail (reported apart).
    const shared = await buildLedger('shared');
    const single = await buildLedger('single');
    const sharedLocation = await ledgerLocation('shared');
    for (const event of shuffled(records, 1)) {
      await single.apply({ event, reading: readWebhookEvent(JSON.parse(event.rawBody ?? '') as Envelope) });
    }

    const a = startApplier(sharedLocation, shuffled(records, 2), 'worker-a');
    const b = startApplier(sharedLocation, shuffled(records, 3), 'worker-b');
    try {
      await Promise.all([a.ready, b.ready]);
      a.go();
      b.go();
      const [outcomesA, outcomesB] = await Promise.all([a.done, b.done]);

      const duplicates = [...outcomesA, ...outcomesB].filter((outcome) => outcome === 'duplicate');
      expect(duplicates).toHaveLength(records.length);
      for (const envelope of envelopes) {
        expect(await shared.getEvent(envelope.id)).toMatchObject({ deliveries: 2 });
      }
      for (let n = 0; n < 20; n++) {
        const paymentId = `${5200000000 + n}_0`;
        const viaShared = stateOf(await shared.getPayment(paymentId));
        expect(viaShared).toMatchObject({
          stage: 'captured',
          capturedTotal: PAYMENT_AMOUNT,
          refundedTotal: 500,
        });
        expect(viaShared).toEqual(stateOf(await single.getPayment(paymentId)));
        expect((await shared.listPaymentEvents(paymentId)).map((e) => e.eventId).sort()).toEqual(
          (await single.listPaymentEvents(paymentId)).map((e) => e.eventId).sort(),
        );
      }
    } finally {
      a.child.kill();
      b.child.kill();
    }
  }, 60_000);
});
