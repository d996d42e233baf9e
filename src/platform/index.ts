export { parseKeyRing, signWebhookBody, verifyWebhookSignature, SignatureError } from './webhook-signature';
export type { KeyRing, SignatureErrorReason } from './webhook-signature';
