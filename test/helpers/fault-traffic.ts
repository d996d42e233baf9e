import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Stage } from '../../src/ledger';
import { platformDateTime, sendWebhook } from '../../src/simulator';
import { paymentEvent } from './deliveries';
import { FAULT_KEY_ID, FAULT_SECRET } from './fault-processes';

/** What the platform reports at each status code used below: the envelope type, status and category. */
const STATUS_WORDING: Record<number, { type: string; status: string; statusCategory: string }> = {
  0: { type: 'payment.created', status: 'CREATED', statusCategory: 'CREATED' },
  4: { type: 'payment.created', status: 'PENDING_PAYMENT', statusCategory: 'PENDING_PAYMENT' },
  46: { type: 'payment.redirected', status: 'REDIRECTED', statusCategory: 'PENDING_PAYMENT' },
  51: {
    type: 'payment.authorization_requested',
    status: 'AUTHORIZATION_REQUESTED',
    statusCategory: 'PENDING_CONNECT_OR_3RD_PARTY',
  },
  5: { type: 'payment.pending_capture', status: 'PENDING_CAPTURE', statusCategory: 'PENDING_MERCHANT' },
  61: {
    type: 'payment.cancellation_requested',
    status: 'CANCELLATION_REQUESTED',
    statusCategory: 'PENDING_CONNECT_OR_3RD_PARTY',
  },
  91: {
    type: 'payment.capture_requested',
    status: 'CAPTURE_REQUESTED',
    statusCategory: 'PENDING_CONNECT_OR_3RD_PARTY',
  },
  9: { type: 'payment.captured', status: 'CAPTURED', statusCategory: 'COMPLETED' },
  8: { type: 'payment.refunded', status: 'REFUNDED', statusCategory: 'REFUNDED' },
  6: { type: 'payment.cancelled', status: 'CANCELLED', statusCategory: 'UNSUCCESSFUL' },
  2: { type: 'payment.rejected', status: 'REJECTED', statusCategory: 'UNSUCCESSFUL' },
};

/** Four ordinary lives of a card payment, each ending in the stage the ledger must hold at the end. */
const LIFECYCLES: readonly { codes: readonly number[]; finalStage: Stage }[] = [
  { codes: [4, 46, 5, 91, 9], finalStage: 'captured' },
  { codes: [46, 5, 91, 9, 8], finalStage: 'refunded' },
  { codes: [0, 4, 46, 51, 2], finalStage: 'rejected' },
  { codes: [4, 46, 5, 61, 6], finalStage: 'cancelled' },
];

export interface PlannedEvent {
  eventId: string;
  paymentId: string;
  statusCode: number;
  /** The envelope as the platform sends it. */
  envelope: Record<string, unknown>;
}

export interface PlannedPayment {
  paymentId: string;
  /** The payment's events in platform order (strictly increasing change times). */
  events: PlannedEvent[];
  finalStage: Stage;
  finalStatusCode: number;
}

export interface TrafficPlan {
  payments: PlannedPayment[];
  events: PlannedEvent[];
}

/**
 * `payments` payments of five events each, cycling through the four lifecycles. Change times are one minute
 * apart within a payment, so the final state does not depend on the order the worker happens to apply them in.
 */
export function planTraffic(options: { payments: number; prefix: string; firstBase?: number }): TrafficPlan {
  const start = Date.UTC(2026, 2, 1, 10, 0, 0);
  const payments = Array.from({ length: options.payments }, (_, index): PlannedPayment => {
    const lifecycle = LIFECYCLES[index % LIFECYCLES.length]!;
    const paymentId = `${(options.firstBase ?? 7_100_000_000) + index}_0`;
    const events = lifecycle.codes.map((statusCode, step): PlannedEvent => {
      const eventId = `${options.prefix}-${index}-${step}`;
      const wording = STATUS_WORDING[statusCode]!;
      const envelope = paymentEvent({
        eventId,
        paymentId,
        statusCode,
        type: wording.type,
        status: wording.status,
        statusCategory: wording.statusCategory,
        changeTime: platformDateTime(new Date(start + index * 1_000 + step * 60_000)),
      });
      return { eventId, paymentId, statusCode, envelope };
    });
    return {
      paymentId,
      events,
      finalStage: lifecycle.finalStage,
      finalStatusCode: lifecycle.codes[lifecycle.codes.length - 1]!,
    };
  });
  return { payments, events: payments.flatMap((payment) => payment.events) };
}

export interface TrafficOptions {
  /** Payments in flight at once; each payment's events are sent one after another, in platform order. */
  concurrency: number;
  /** The platform's re-delivery of anything not answered 2xx. */
  retry: { attempts: number; delayMs: number };
  /** Pause before each event's first delivery, to stretch the stream out. @defaultValue 0 */
  paceMs?: number;
}

export interface Traffic {
  /** Events whose deliveries are finished so far: acknowledged (2xx) or given up. */
  readonly progress: { started: number; acked: number; gaveUp: number };
  /** Every delivery's status per event id (0: no HTTP answer), once all events are finished. */
  done: Promise<Map<string, number[]>>;
}

/** Sends the plan's events to `${url}/webhooks` with the simulator's sender, as the platform would. */
export function sendTraffic(url: string, plan: TrafficPlan, options: TrafficOptions): Traffic {
  const progress = { started: 0, acked: 0, gaveUp: 0 };
  const statuses = new Map<string, number[]>();
  let next = 0;
  const sendPayments = async () => {
    for (let payment = plan.payments[next++]; payment; payment = plan.payments[next++]) {
      for (const event of payment.events) {
        progress.started += 1;
        const answers = await sendWebhook(`${url}/webhooks`, event.envelope, {
          keyId: FAULT_KEY_ID,
          secret: FAULT_SECRET,
          retry: options.retry,
          delayMs: options.paceMs ?? 0,
        });
        statuses.set(event.eventId, answers);
        const last = answers[answers.length - 1] ?? 0;
        if (last >= 200 && last < 300) progress.acked += 1;
        else progress.gaveUp += 1;
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.concurrency }, sendPayments)).then(() => statuses);
  return { progress, done };
}

export interface DeliveryTotals {
  events: number;
  deliveries: number;
  /** Events whose last delivery was answered 2xx. */
  acked: number;
  answered2xx: number;
  answered5xx: number;
  /** Answers other than 2xx and 5xx (there should be none). */
  answeredOther: number;
  /** Deliveries without an HTTP answer. */
  noAnswer: number;
  /** Events re-delivered at least once. */
  redeliveredEvents: number;
}

export function totalDeliveries(statuses: Map<string, number[]>): DeliveryTotals {
  const totals: DeliveryTotals = {
    events: statuses.size,
    deliveries: 0,
    acked: 0,
    answered2xx: 0,
    answered5xx: 0,
    answeredOther: 0,
    noAnswer: 0,
    redeliveredEvents: 0,
  };
  for (const answers of statuses.values()) {
    totals.deliveries += answers.length;
    if (answers.length > 1) totals.redeliveredEvents += 1;
    const last = answers[answers.length - 1] ?? 0;
    if (last >= 200 && last < 300) totals.acked += 1;
    for (const status of answers) {
      if (status >= 200 && status < 300) totals.answered2xx += 1;
      else if (status >= 500) totals.answered5xx += 1;
      else if (status === 0) totals.noAnswer += 1;
      else totals.answeredOther += 1;
    }
  }
  return totals;
}

/** What happened to each HTTP request the sender made, seen from the client's side. */
export interface ConnectionTotals {
  requests: number;
  answered: number;
  /** Answers with a 5xx status, counted as they arrive. */
  answered5xx: number;
  /** Connection refused: nothing was listening, the request never reached a server. */
  refused: number;
  /** The connection was made, but it closed or failed before any answer: a request cut off. */
  cutOff: number;
  /** Error codes of the cut-off requests. */
  cutOffCodes: string[];
}

export interface ConnectionWatch {
  readonly totals: ConnectionTotals;
  /** Requests sent and not yet settled (answered, refused or cut off). */
  inFlight(): number;
  stop(): void;
}

/**
 * Watches every HTTP request this process makes to `127.0.0.1:port` (through node:diagnostics_channel, so the
 * simulator's sender is used unchanged) and tells a refused connection from a request cut off mid-way.
 */
export function watchConnections(port: number): ConnectionWatch {
  const totals: ConnectionTotals = {
    requests: 0,
    answered: 0,
    answered5xx: 0,
    refused: 0,
    cutOff: 0,
    cutOffCodes: [],
  };
  const host = `127.0.0.1:${port}`;
  const onRequest = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    if (request.getHeader('host') !== host) return;
    totals.requests += 1;
    let settled = false;
    request.on('response', (response: IncomingMessage) => {
      if (settled) return;
      settled = true;
      totals.answered += 1;
      if ((response.statusCode ?? 0) >= 500) totals.answered5xx += 1;
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      if (error.code === 'ECONNREFUSED') totals.refused += 1;
      else {
        totals.cutOff += 1;
        totals.cutOffCodes.push(error.code ?? error.message);
      }
    });
  };
  diagnosticsChannel.subscribe('http.client.request.start', onRequest);
  return {
    totals,
    inFlight: () => totals.requests - totals.answered - totals.refused - totals.cutOff,
    stop: () => diagnosticsChannel.unsubscribe('http.client.request.start', onRequest),
  };
}
