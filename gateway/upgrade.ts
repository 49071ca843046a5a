/**
 * WebSocket (and other HTTP/1.1 Upgrade) requests: routed by the same plan, then the two sockets
 * are joined. undici's upgrade API performs the upstream handshake; the client gets the upstream's
 * 101 with `x-switchyard-upstream` added. Errors before the handshake get a status line and a reason.
 */

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { UPSTREAM_HEADER } from '../src/compiler/plan.js';
import type { ClientAddress } from './client-address.js';
import type { GatewayError } from './errors.js';
import { upstreamError } from './errors.js';
import type { UpstreamPools } from './proxy.js';
import { upstreamRequestHeaders } from './proxy.js';

export function refuseUpgrade(socket: Duplex, e: GatewayError): void {
  const body = e.body();
  const headers = Object.entries({ ...e.headers, 'x-switchyard-error': e.code })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${e.status} ${e.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${headers}\r\n${body}`,
  );
}

export async function proxyUpgrade(
  pools: UpstreamPools,
  input: {
    req: IncomingMessage;
    socket: Duplex;
    head: Buffer;
    url: URL;
    upstream: string;
    client: ClientAddress;
    timeoutMs: number;
  },
): Promise<number> {
  const { req, socket, head, url } = input;
  const protocol = String(req.headers.upgrade ?? 'websocket');
  const headers = upstreamRequestHeaders(req, input.client);
  try {
    const up = await pools.get(url).upgrade({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as never,
      headers,
      protocol,
      headersTimeout: input.timeoutMs,
    } as never);
    const lines = ['HTTP/1.1 101 Switching Protocols'];
    for (const [k, v] of Object.entries(up.headers)) {
      for (const value of Array.isArray(v) ? v : [v]) if (value !== undefined) lines.push(`${k}: ${value}`);
    }
    lines.push(`${UPSTREAM_HEADER}: ${input.upstream}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) up.socket.write(head);
    up.socket.pipe(socket);
    socket.pipe(up.socket);
    const close = () => {
      up.socket.destroy();
      socket.destroy();
    };
    up.socket.once('error', close).once('close', close);
    socket.once('error', close).once('close', close);
    return 101;
  } catch (e) {
    const err = upstreamError(e, input.upstream, url, false);
    refuseUpgrade(socket, err);
    return err.status;
  }
}
