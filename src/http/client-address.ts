import type { IncomingMessage } from 'node:http';
import proxyAddr from 'proxy-addr';

export type ClientAddress = (req: IncomingMessage) => string;

/**
 * The client's address as `TRUST_PROXY` describes the proxies in front: unset, the socket's peer; a whole
 * number, that many proxy hops trusted; `true`, every hop; otherwise a comma list of addresses, subnets or
 * proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`). The same function serves Express's `req.ip`.
 */
export function compileTrustProxy(spec: string | undefined): (address: string, hop: number) => boolean {
  const value = spec?.trim() ?? '';
  if (value === '' || value === 'false') return () => false;
  if (value === 'true') return () => true;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return proxyAddr.compile(value.split(',').map((part) => part.trim()));
}

export function createClientAddress(trust: (address: string, hop: number) => boolean): ClientAddress {
  return (req) => proxyAddr(req, trust) || req.socket.remoteAddress || 'unknown';
}
