export { startPlatformSimulator, platformErrorBody } from './platform-simulator';
export type {
  PlatformSimulator,
  PlatformSimulatorOptions,
  SimulatedFailureStatus,
  SimulatedRequest,
} from './platform-simulator';
export { sendWebhook } from './webhook-sender';
export type { SendWebhookOptions } from './webhook-sender';
export {
  TEST_AMOUNTS,
  addSimulatedRefund,
  buildSimulatedPayment,
  platformDateTime,
} from './simulated-payments';
export type {
  AmountOfMoney,
  CreatePaymentInput,
  RefundInput,
  SimulatedOperation,
  SimulatedPayment,
  SimulatedStatusOutput,
} from './simulated-payments';
