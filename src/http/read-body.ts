import type { IncomingMessage } from 'node:http';

/** Why a request body could not be read: answered with `status` and the JSON error `code`. */
export class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
  constructor(
    readonly status: 400 | 413 | 415,
    readonly code: 'payload_too_large' | 'unsupported_content_encoding' | 'request_aborted',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads the body exactly as sent, up to `limit` bytes. On any refusal the rest of the body is read off and
 * dropped before the promise settles, so the answer reaches a client that is still sending (as body-parser
 * does). A content coding is refused rather than inflated: the signature covers the bytes as they arrive.
 */
export function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const coding = req.headers['content-encoding']?.trim().toLowerCase();
    let refusal: BodyReadError | undefined;
    if (coding !== undefined && coding !== '' && coding !== 'identity') {
      refusal = new BodyReadError(
        415,
        'unsupported_content_encoding',
        `content encoding "${coding.slice(0, 40)}" is not accepted (send the body unencoded)`,
      );
    } else if (Number(req.headers['content-length']) > limit) {
      refusal = tooLarge(limit);
    }
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      if (refusal) return;
      received += chunk.length;
      if (received > limit) {
        refusal = tooLarge(limit);
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => (refusal ? reject(refusal) : resolve(Buffer.concat(chunks, received))));
    const aborted = () =>
      reject(new BodyReadError(400, 'request_aborted', 'the request ended before its body did'));
    req.once('error', aborted);
    req.once('close', () => req.complete || aborted());
  });
}

function tooLarge(limit: number): BodyReadError {
  return new BodyReadError(413, 'payload_too_large', `the body is larger than ${limit} bytes`);
}
