import { z } from 'zod';
import { hasLoneSurrogate, storedText } from './text';

/** `yyyyMMddHHmmss`, platform time. */
const zChangeTime = z.string().regex(/^\d{14}$/, 'expected yyyyMMddHHmmss');

const zAmountOfMoney = z.looseObject({
  amount: z.number().int(),
  currencyCode: z.string().min(3).max(3),
});

export const zStatusError = z.looseObject({
  errorCode: z.string().optional(),
  id: z.string().optional(),
  category: z.string().optional(),
  message: z.string().optional(),
  httpStatusCode: z.number().optional(),
});

const zStatusOutput = z.looseObject({
  statusCode: z.number().int(),
  statusCategory: z.string().optional(),
  statusCodeChangeDateTime: zChangeTime.optional(),
  isAuthorized: z.boolean().optional(),
  isCancellable: z.boolean().optional(),
  isRefundable: z.boolean().optional(),
  errors: z.array(zStatusError).optional(),
});

/** A reference that could not be stored as sent is read as absent: the status it came with still counts. */
const zReferences = z.looseObject({
  merchantReference: z
    .string()
    .optional()
    .transform((reference) =>
      reference !== undefined && hasLoneSurrogate(reference) ? undefined : reference,
    ),
});

/** The `payment` object of a webhook, and the body of GetPayment / GetPaymentDetails. */
export const zPaymentPayload = z.looseObject({
  id: storedText(z.string().min(1).max(64)),
  status: z.string().optional(),
  statusOutput: zStatusOutput,
  paymentOutput: z
    .looseObject({
      amountOfMoney: zAmountOfMoney.optional(),
      acquiredAmount: zAmountOfMoney.optional(),
      references: zReferences.optional(),
    })
    .optional(),
});
export type PaymentPayload = z.infer<typeof zPaymentPayload>;

/** The `refund` object of a webhook. It names no payment id; the refund id's base links it. */
export const zRefundPayload = z.looseObject({
  id: storedText(z.string().min(1).max(64)),
  status: z.string().optional(),
  statusOutput: zStatusOutput,
  refundOutput: z
    .looseObject({
      amountOfMoney: zAmountOfMoney.optional(),
      references: zReferences.optional(),
    })
    .optional(),
});
export type RefundPayload = z.infer<typeof zRefundPayload>;

/** One entry of GetPaymentDetails `Operations`: an authorisation, capture, refund or cancel. */
export const zOperation = z.looseObject({
  id: storedText(z.string().min(1).max(64)),
  status: z.string().optional(),
  statusOutput: zStatusOutput,
  amountOfMoney: zAmountOfMoney.optional(),
  references: zReferences.optional(),
});

export const zPaymentDetailsOperations = z.looseObject({
  Operations: z.array(zOperation).optional(),
});
