export { parseKeyRing, signWebhookBody, verifyWebhookSignature, SignatureError } from './webhook-signature';
export type { KeyRing, SignatureErrorReason } from './webhook-signature';
export { createPlatformClient, PlatformError } from './platform-client';
export type {
  PlatformClient,
  PlatformClientOptions,
  PaymentDetailsResult,
  ConnectionProbe,
  PlatformErrorReason,
} from './platform-client';
export { signServerRequest, stringToSign, v1HmacSignature } from './request-signing';
export type { ServerRequestToSign, SignedHeaders } from './request-signing';
