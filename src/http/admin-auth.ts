import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { sendError } from './http-error';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * What an Authorization header presents as the admin token: the password of HTTP basic credentials (any
 * user name; a browser asks for them after the 401) or a bearer token (scripts). Undefined when it
 * presents neither.
 */
export function parseAdminCredentials(
  header: string | undefined,
): { user: string | null; token: string } | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (bearer) return { user: null, token: bearer[1]! };
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  // A user name cannot contain ':' (RFC 7617); the password can, so split on the first one only.
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon) || null, token: decoded.slice(colon + 1) };
}

/**
 * Requires the admin token as HTTP basic password or bearer token, compared in constant time (SHA-256 of
 * both, then `timingSafeEqual`). Both refusals are 401 with `WWW-Authenticate: Basic`, so a browser asks
 * again rather than showing a dead end.
 */
export function requireAdminToken(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    const presented = parseAdminCredentials(req.get('authorization'));
    const valid = presented !== undefined && timingSafeEqual(digest(presented.token), expected);
    if (valid) return next();
    res.set('WWW-Authenticate', 'Basic realm="paystate"');
    if (presented === undefined) {
      sendError(
        res,
        401,
        'missing_credentials',
        'send HTTP basic credentials (any user, ADMIN_TOKEN as password) or Authorization: Bearer <ADMIN_TOKEN>',
      );
      return;
    }
    sendError(res, 401, 'invalid_credentials', 'the presented password or bearer token is not ADMIN_TOKEN');
  };
}
