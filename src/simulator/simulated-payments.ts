/**
 * Direct-shaped GetPaymentDetails bodies (top-level payment plus `Operations`, capital O) built the way the
 * platform's test environment answers its documented test amounts, so the same scripts make sense against both.
 * Shapes follow the vendor plugin's stubs in test/fixtures; codes follow the statusCode table in platform.md.
 */

/** Amounts (minor units) that make the platform's test environment fail or hesitate on purpose. */
export const TEST_AMOUNTS = {
  refusedSale: 1302,
  refusedRefund: 1303,
  refusedCapture: 1309,
  uncertainRefund: 1203,
  uncertainCapture: 1209,
} as const;

export interface AmountOfMoney {
  amount: number;
  currencyCode: string;
}

export interface SimulatedStatusOutput {
  statusCode: number;
  statusCategory: string;
  isAuthorized?: boolean;
  isCancellable?: boolean;
  isRefundable?: boolean;
  statusCodeChangeDateTime?: string;
  errors?: Array<Record<string, unknown>>;
}

export interface SimulatedOperation {
  id: string;
  amountOfMoney: AmountOfMoney;
  status: string;
  statusOutput: SimulatedStatusOutput;
  paymentMethod?: string;
  references?: { merchantReference?: string };
  [key: string]: unknown;
}

/** A GetPaymentDetails answer body. Bodies stored with `setPayment` are answered verbatim, whatever they hold. */
export interface SimulatedPayment {
  id: string;
  status: string;
  statusOutput: SimulatedStatusOutput;
  paymentOutput: {
    amountOfMoney: AmountOfMoney;
    acquiredAmount?: AmountOfMoney;
    references?: { merchantReference?: string };
    [key: string]: unknown;
  };
  Operations: SimulatedOperation[];
  [key: string]: unknown;
}

export interface CreatePaymentInput {
  paymentId: string;
  /** Minor units; the test amounts in {@link TEST_AMOUNTS} pick the outcome. */
  amount: number;
  /** @defaultValue 'EUR' */
  currency?: string;
  /** @defaultValue the payment id */
  merchantReference?: string;
}

export interface RefundInput {
  /** Minor units. @defaultValue what is still refundable */
  amount?: number;
}

type Status = [code: number, status: string, category: string];
const CAPTURED: Status = [9, 'CAPTURED', 'COMPLETED'];
const AUTHORIZED: Status = [5, 'PENDING_CAPTURE', 'PENDING_MERCHANT'];
const REFUSED: Status = [2, 'REJECTED', 'UNSUCCESSFUL'];
const CAPTURE_REFUSED: Status = [93, 'REJECTED_CAPTURE', 'UNSUCCESSFUL'];
const CAPTURE_UNCERTAIN: Status = [92, 'CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY'];
const REFUNDED: Status = [8, 'REFUNDED', 'REFUNDED'];
const REFUND_REFUSED: Status = [83, 'REJECTED', 'UNSUCCESSFUL'];
const REFUND_UNCERTAIN: Status = [82, 'REFUND_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY'];

/** `yyyyMMddHHmmss` in UTC, the platform's `statusCodeChangeDateTime` format. */
export function platformDateTime(at: Date = new Date()): string {
  return at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function acquirerError(id: string, errorCode: string): Record<string, unknown> {
  return {
    errorCode,
    category: 'PAYMENT_PLATFORM_ERROR',
    httpStatusCode: 402,
    id,
    message: '',
    retriable: false,
  };
}

function statusOutput(
  [statusCode, , statusCategory]: Status,
  flags: { isAuthorized: boolean; isCancellable: boolean; isRefundable: boolean },
  errors?: Array<Record<string, unknown>>,
): SimulatedStatusOutput {
  return {
    statusCode,
    statusCategory,
    ...flags,
    statusCodeChangeDateTime: platformDateTime(),
    ...(errors && { errors }),
  };
}

function operation(
  id: string,
  money: AmountOfMoney,
  state: Status,
  output: SimulatedStatusOutput,
  merchantReference: string,
): SimulatedOperation {
  return {
    id,
    amountOfMoney: { ...money },
    status: state[1],
    statusOutput: output,
    paymentMethod: 'card',
    references: { merchantReference },
  };
}

function idBase(paymentId: string): string {
  const underscore = paymentId.lastIndexOf('_');
  return underscore === -1 ? paymentId : paymentId.slice(0, underscore);
}

/** Builds the body GetPaymentDetails answers right after the customer paid `input.amount`. */
export function buildSimulatedPayment(input: CreatePaymentInput): SimulatedPayment {
  const money = { amount: input.amount, currencyCode: input.currency ?? 'EUR' };
  const reference = input.merchantReference ?? input.paymentId;
  const captureId = `${idBase(input.paymentId)}_1`;
  const settled = { isAuthorized: false, isCancellable: false, isRefundable: true };
  const authorised = { isAuthorized: true, isCancellable: true, isRefundable: false };
  const closed = { isAuthorized: false, isCancellable: false, isRefundable: false };

  let top: Status = CAPTURED;
  let flags = settled;
  let errors: Array<Record<string, unknown>> | undefined;
  let operations: SimulatedOperation[];
  let acquired = input.amount;
  switch (input.amount) {
    case TEST_AMOUNTS.refusedSale:
      [top, flags, acquired] = [REFUSED, closed, 0];
      errors = [acquirerError('AUTHORIZATION_REFUSED', '30511001')];
      operations = [
        operation(input.paymentId, money, REFUSED, statusOutput(REFUSED, closed, errors), reference),
      ];
      break;
    case TEST_AMOUNTS.refusedCapture:
    case TEST_AMOUNTS.uncertainCapture: {
      const refused = input.amount === TEST_AMOUNTS.refusedCapture;
      [top, flags, acquired] = [refused ? CAPTURE_REFUSED : CAPTURE_UNCERTAIN, authorised, 0];
      errors = refused ? [acquirerError('CAPTURE_REFUSED', '30931001')] : undefined;
      operations = [
        operation(input.paymentId, money, AUTHORIZED, statusOutput(AUTHORIZED, authorised), reference),
        operation(captureId, money, top, statusOutput(top, closed, errors), reference),
      ];
      break;
    }
    default:
      operations = [operation(input.paymentId, money, CAPTURED, statusOutput(CAPTURED, settled), reference)];
  }
  return {
    id: input.paymentId,
    status: top[1],
    statusOutput: statusOutput(top, flags, errors),
    paymentOutput: {
      amountOfMoney: money,
      acquiredAmount: { amount: acquired, currencyCode: money.currencyCode },
      references: { merchantReference: reference },
      paymentMethod: 'card',
      cardPaymentMethodSpecificOutput: {
        paymentProductId: 1,
        card: { cardNumber: '************4675', expiryDate: '1230' },
      },
    },
    Operations: operations,
  };
}

function nextOperationId(payment: SimulatedPayment): string {
  const base = idBase(payment.id);
  const used = payment.Operations.map((op) => Number(op.id.slice(base.length + 1))).filter(Number.isInteger);
  return `${base}_${Math.max(0, ...used) + 1}`;
}

/**
 * Adds a refund Operation as the platform would after a refund request made in its portal: 1303 payments get
 * a refused refund (83), 1203 an uncertain one (82), others a done refund (8). A done refund of everything
 * still refundable turns the payment itself REFUNDED (8); otherwise the top level stays as it was.
 */
export function addSimulatedRefund(payment: SimulatedPayment, input: RefundInput = {}): SimulatedPayment {
  const original = payment.paymentOutput.amountOfMoney;
  const refunded = payment.Operations.filter((op) => op.statusOutput.statusCode === 8).reduce(
    (sum, op) => sum + op.amountOfMoney.amount,
    0,
  );
  const money = { amount: input.amount ?? original.amount - refunded, currencyCode: original.currencyCode };
  const state =
    original.amount === TEST_AMOUNTS.refusedRefund
      ? REFUND_REFUSED
      : original.amount === TEST_AMOUNTS.uncertainRefund
        ? REFUND_UNCERTAIN
        : REFUNDED;
  const errors = state === REFUND_REFUSED ? [acquirerError('REFUND_REFUSED', '30831001')] : undefined;
  const closed = { isAuthorized: false, isCancellable: false, isRefundable: false };
  const reference = payment.paymentOutput.references?.merchantReference ?? payment.id;
  payment.Operations.push(
    operation(nextOperationId(payment), money, state, statusOutput(state, closed, errors), reference),
  );
  if (state === REFUNDED && refunded + money.amount >= original.amount) {
    payment.status = REFUNDED[1];
    payment.statusOutput = statusOutput(REFUNDED, closed);
  }
  return payment;
}
