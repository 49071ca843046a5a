/**
 * A request's head made canonical before anything reads it (routing, tokens, the upstream's Host),
 * so every step sees one authority and an origin-form path:
 * - HTTP/2: `:authority` is the authority (RFC 9113 §8.3.1), whatever a `host` header says.
 * - HTTP/1.1: two Host headers are refused (RFC 9112 §3.2: 400; Node keeps the first and drops
 *   the rest, so the router and the pod could read different hosts), and so is a Connection header
 *   that names Host (as Envoy: dropping it would send the pod the upstream's address); an absolute-form target
 *   (`GET http://shop.test/x`) names the authority, which replaces Host (RFC 9112 §3.2.2), and
 *   the upstream gets the origin form (`/x`), as Envoy does.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { GatewayError } from './errors.js';
import { connectionTokens } from './proxy.js';
import type { TrafficRequest } from './traffic-server.js';

const SLASH = 47;

/** Rewrites `req.headers.host` and `req.url` in place; a GatewayError (400) when the head is refused. */
export function canonicalHead(req: TrafficRequest): GatewayError | undefined {
  if (req.httpVersionMajor === 2) {
    const authority = req.headers[':authority'];
    if (typeof authority === 'string') req.headers.host = authority;
    return undefined;
  }
  const http1 = req as IncomingMessage;
  if (hostCount(http1.rawHeaders) > 1)
    return new GatewayError('SY_GW_BAD_REQUEST', 'the request has more than one Host header');
  if (namesHost(http1.headers))
    return new GatewayError('SY_GW_BAD_REQUEST', 'the Connection header names Host, which is not hop-by-hop');
  const target = http1.url;
  if (target === undefined || target.charCodeAt(0) === SLASH) return undefined;
  // `OPTIONS *` asks about the server itself, not about a route of a pod (Envoy: 404).
  if (target === '*')
    return new GatewayError('SY_GW_NO_ROUTE', 'no route serves the asterisk form (OPTIONS *)');
  return absoluteForm(http1, target);
}

/** Whether a Connection header lists Host among the headers to drop (Envoy refuses it: 400). */
function namesHost(headers: IncomingHttpHeaders): boolean {
  const connection = headers.connection;
  // Most requests say `keep-alive` or nothing: no token list is built for them.
  return connection !== undefined && /host/i.test(connection) && connectionTokens(headers).has('host');
}

function hostCount(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

function absoluteForm(req: IncomingMessage, target: string): GatewayError | undefined {
  const url = URL.parse(target);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '')
    return new GatewayError(
      'SY_GW_BAD_REQUEST',
      `the request target ${JSON.stringify(target.slice(0, 100))} is neither a path nor an http(s) URL`,
    );
  req.headers.host = url.host;
  req.url = originForm(target);
  return undefined;
}

/** The path and query of an absolute URL as sent (URL's own pathname would resolve `..`). */
function originForm(target: string): string {
  let i = target.indexOf('//') + 2;
  while (i < target.length && target[i] !== '/' && target[i] !== '?') i++;
  const rest = target.slice(i);
  return rest.charCodeAt(0) === SLASH ? rest : `/${rest}`;
}
