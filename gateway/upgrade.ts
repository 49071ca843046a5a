/**
 * HTTP/1.1 Upgrade requests (WebSockets, and what a policy's `upgrades` allows): routed by the same
 * plan, then the two sockets are joined. An Upgrade to a protocol the policy does not list is
 * refused with 403 before anything reaches the pod, as Envoy's `upgrade_configs` does: a tunnel
 * carries bytes, and requests inside an `h2c` tunnel would skip routing, tokens, rate limits and
 * header scrubbing. The upstream handshake is node:http's (undici's upgrade API turns a declined
 * upgrade into an error): a 101 is relayed with `x-switchyard-upstream` added; any other answer
 * (401, 426, …) reaches the client as the pod sent it, on a connection then closed.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { UPSTREAM_HEADER } from '../core/compiler/plan.js';
import { DEFAULTS } from '../core/resources/schema.js';
import type { ClientAddress } from './client-address.js';
import { GatewayError, upstreamError } from './errors.js';
import { isHopByHop, upstreamRequestHeaders } from './proxy.js';

export function refuseUpgrade(socket: Duplex, e: GatewayError): void {
  const body = e.body();
  const headers = Object.entries({ ...e.headers, 'x-switchyard-error': e.code })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${e.status} ${e.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${headers}\r\n${body}`,
  );
}

/**
 * Whether an Upgrade request is handed to the upgrade path at all. `h2c` is not: as Envoy does, the
 * request is served as a plain HTTP/1.1 request (its Upgrade headers are hop-by-hop and dropped),
 * and the bytes after it are read as the next request, through every rule. The gateway speaks
 * HTTP/2 cleartext itself (prior knowledge), so nothing is lost.
 */
export function takesUpgradePath(req: IncomingMessage): boolean {
  return protocolAsked(req) !== 'h2c';
}

function protocolAsked(req: IncomingMessage): string {
  return String(req.headers.upgrade ?? '')
    .trim()
    .toLowerCase();
}

/** The protocol asked for, lower case (`websocket`), or a 403 when the policy does not allow it. */
export function allowedUpgrade(
  req: IncomingMessage,
  allowed: readonly string[] = DEFAULTS.upgrades,
): string | GatewayError {
  const asked = protocolAsked(req);
  // h2c cannot be listed (the validator refuses it), so it is refused here on TLS too.
  if (allowed.includes(asked)) return asked;
  return new GatewayError(
    'SY_GW_UPGRADE_REFUSED',
    `upgrade to ${JSON.stringify(asked.slice(0, 64))} is not allowed here (allowed: ${allowed.join(', ') || 'none'})`,
  );
}

export interface UpgradeInput {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  url: URL;
  upstream: string;
  client: ClientAddress;
  protocol: string;
  timeoutMs: number;
}

/** Performs the upstream handshake and joins the sockets; resolves with the status the client got. */
export function proxyUpgrade(input: UpgradeInput): Promise<number> {
  const { req, url } = input;
  const headers = upstreamRequestHeaders(req, input.client);
  headers.connection = 'upgrade';
  headers.upgrade = input.protocol;
  const prefix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const upstreamReq = (url.protocol === 'https:' ? httpsRequest : httpRequest)({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    method: req.method ?? 'GET',
    path: prefix + (req.url ?? '/'),
    headers,
    setHost: false,
    agent: false,
  });
  return new Promise<number>((resolve) => {
    const timer = setTimeout(
      () => upstreamReq.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
      input.timeoutMs,
    );
    const settle = (status: number) => {
      clearTimeout(timer);
      resolve(status);
    };
    upstreamReq.once('upgrade', (res, upSocket, upHead) => settle(joinSockets(input, res, upSocket, upHead)));
    upstreamReq.once('response', (res) => settle(relayDeclined(input, res)));
    upstreamReq.once('error', (e) => {
      const err = upstreamError(e, input.upstream, url, false);
      refuseUpgrade(input.socket, err);
      settle(err.status);
    });
    // A client that leaves during the handshake takes the upstream request with it.
    input.socket.once('close', () => abandon(upstreamReq));
    upstreamReq.end();
  });
}

function abandon(upstreamReq: ClientRequest): void {
  if (!upstreamReq.destroyed) upstreamReq.destroy();
}

/** The upstream's status line and headers, less hop-by-hop ones, with `x-switchyard-upstream`. */
function headLines(res: IncomingMessage, upstream: string, keep: readonly string[]): string[] {
  const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`];
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (name === UPSTREAM_HEADER || (isHopByHop(name) && !keep.includes(name))) continue;
    lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  lines.push(`${UPSTREAM_HEADER}: ${upstream}`);
  return lines;
}

function joinSockets(input: UpgradeInput, res: IncomingMessage, upSocket: Duplex, upHead: Buffer): number {
  const { socket, head } = input;
  const lines = headLines(res, input.upstream, ['connection', 'upgrade']);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (upHead.length > 0) socket.write(upHead);
  if (head.length > 0) upSocket.write(head);
  upSocket.pipe(socket);
  socket.pipe(upSocket);
  const close = () => {
    upSocket.destroy();
    socket.destroy();
  };
  // Either side's end closes the tunnel: no half-open tunnel is kept (both servers allow half-open
  // sockets, so one that ended would otherwise hold the other until the drain deadline).
  upSocket.once('error', close).once('end', close).once('close', close);
  socket.once('error', close).once('end', close).once('close', close);
  return 101;
}

/** A declined upgrade: the pod's own answer, its body delimited by closing the connection. */
function relayDeclined(input: UpgradeInput, res: IncomingMessage): number {
  const { socket } = input;
  const lines = headLines(res, input.upstream, []);
  lines.push('connection: close');
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  res.pipe(socket);
  res.once('error', () => socket.destroy());
  return res.statusCode ?? 502;
}
