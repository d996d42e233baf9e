import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { sendError } from './http-error';

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Requires `Authorization: Bearer <token>` with one of `tokens`, compared in constant time. */
export function requireBearerToken(tokens: readonly string[]): RequestHandler {
  const known = tokens.map(digest);
  return (req, res, next) => {
    const header = req.get('authorization');
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) {
      sendError(res, 401, 'missing_token', 'send Authorization: Bearer <token> with a token from API_TOKENS');
      return;
    }
    const presented = digest(match[1]!);
    // Compare against every token, without stopping early, so timing does not tell which one nearly matched.
    let valid = false;
    for (const token of known) valid = timingSafeEqual(presented, token) || valid;
    if (!valid) {
      sendError(res, 403, 'invalid_token', 'the bearer token is not one of API_TOKENS');
      return;
    }
    next();
  };
}
