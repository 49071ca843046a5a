/**
 * The traffic port: Node's own HTTP servers with no framework between them and the proxy (fastify
 * cost a tenth of the gateway's requests/s here; load-tests/README.md). One port speaks HTTP/1.1
 * and HTTP/2: in cleartext, a connection that opens with the HTTP/2 preface is handed to an HTTP/2
 * server (h2c with prior knowledge, as Envoy's `codec_type: AUTO` sniffs it); given a certificate,
 * TLS offers h2 and http/1.1 by ALPN. Slowloris guards on both; bodies left unread for the proxy
 * to stream; an unexpected error answered 500 with a code rather than a crash.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  createServer as createH2cServer,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { GatewayError } from './errors.js';
import { listenUrl } from './listen-url.js';

export interface ServerLimits {
  /** Slowloris guard: the whole request head must arrive within this time. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxHeaderSize?: number;
  keepAliveTimeoutMs?: number;
}

/** A certificate and key (PEM) for TLS on the traffic port: HTTP/2 and HTTP/1.1 by ALPN. */
export interface TrafficTls {
  cert: string | Buffer;
  key: string | Buffer;
}

/** An HTTP/1.1 or an HTTP/2 request: the proxy reads what both have in common. */
export type TrafficRequest = IncomingMessage | Http2ServerRequest;
export type TrafficResponse = ServerResponse | Http2ServerResponse;
/** Handles one request; a promise only when the handler had to wait (its rejection is answered 500). */
export type TrafficHandler = (req: TrafficRequest, res: TrafficResponse) => void | Promise<void>;

export interface TrafficServer {
  /** Emits 'upgrade' for HTTP/1.1 upgrades (WebSockets). */
  server: Server | Http2SecureServer;
  listen(port: number, host: string): Promise<string>;
  /** Closes connections with nothing in flight (a drain sweeps them as their last response ends). */
  closeIdleConnections(): void;
  /** Closes every connection (a drain's deadline). */
  closeAllConnections(): void;
  /** Stops accepting and resolves when every connection has closed; new requests meanwhile get 503. */
  close(): Promise<void>;
}

/** What every HTTP/2 connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Which server a cleartext connection's first bytes belong to, or 'undecided' while they could be either. */
function sniff(seen: Buffer): 'h2' | 'http1' | 'undecided' {
  const n = Math.min(seen.length, H2_PREFACE.length);
  if (!seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return 'http1';
  return seen.length >= H2_PREFACE.length ? 'h2' : 'undecided';
}

export function trafficServer(
  limits: ServerLimits,
  logger: Logger,
  handle: TrafficHandler,
  tls?: TrafficTls,
  /** Which HTTP/1.1 Upgrade requests go to 'upgrade' listeners; the others are served as requests. */
  takesUpgradePath?: (req: IncomingMessage) => boolean,
): TrafficServer {
  const state = { closing: false, sessions: new Set<Http2Session>(), sniffing: new Set<Socket>() };
  const onRequest = guarded(handle, logger, () => state.closing);
  const h2Options = {
    maxHeaderListSize: limits.maxHeaderSize ?? 16_384,
    // A proxy has nothing to push.
    settings: { enablePush: false },
  };
  const track = (session: Http2Session) => {
    state.sessions.add(session);
    session.once('close', () => state.sessions.delete(session));
    // An HTTP/2 connection idle this long is closed, as keep-alive ends an idle HTTP/1.1 one.
    session.setTimeout(limits.keepAliveTimeoutMs ?? 65_000, () => session.close());
  };
  let server: Server | Http2SecureServer;
  if (tls) {
    const secure = createSecureServer({ ...h2Options, ...tls, allowHTTP1: true }, onRequest);
    secure.on('session', track);
    // TLS with allowHTTP1 has no headers timeout of its own for the HTTP/1.1 side: bound the handshake and head.
    secure.setTimeout(limits.headersTimeoutMs ?? 10_000);
    server = secure;
  } else {
    const h1 = createServer(http1Options(limits, takesUpgradePath), onRequest);
    const h2c = createH2cServer(h2Options, onRequest);
    h2c.on('session', track);
    sniffProtocols(h1, h2c, limits.headersTimeoutMs ?? 10_000, state.sniffing);
    server = h1;
  }
  return controls(server, tls, state);
}

/** Each request to `handle`, unless shutting down; what it throws becomes a 500, not a crash. */
function guarded(handle: TrafficHandler, logger: Logger, isClosing: () => boolean) {
  const unexpected = (res: TrafficResponse) => (err: unknown) => {
    logger.error({ err }, 'unexpected error in the traffic handler');
    respondError(res, new GatewayError('SY_INTERNAL', 'internal error in the gateway'), false);
  };
  return (req: TrafficRequest, res: TrafficResponse) => {
    if (isClosing()) {
      // As a server that is shutting down should: this connection goes, the client retries elsewhere.
      respondError(res, new GatewayError('SY_GW_NOT_READY', 'shutting down'), true);
      return;
    }
    try {
      handle(req, res)?.catch(unexpected(res));
    } catch (err) {
      unexpected(res)(err);
    }
  };
}

function http1Options(limits: ServerLimits, takesUpgradePath?: (req: IncomingMessage) => boolean) {
  const headersTimeout = limits.headersTimeoutMs ?? 10_000;
  return {
    headersTimeout,
    // Node checks those timeouts only this often (default 30 s), which would let slowloris linger.
    connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 2)),
    requestTimeout: limits.requestTimeoutMs ?? 300_000,
    maxHeaderSize: limits.maxHeaderSize ?? 16_384,
    keepAliveTimeout: limits.keepAliveTimeoutMs ?? 65_000,
    ...(takesUpgradePath ? { shouldUpgradeCallback: takesUpgradePath } : {}),
  };
}

/**
 * One cleartext port for both protocols: each connection's first bytes go to the HTTP/2 server when
 * they are its preface, else to node:http. `sniffing` holds those not decided yet (neither server
 * tracks them).
 */
function sniffProtocols(
  h1: Server,
  h2c: ReturnType<typeof createH2cServer>,
  headersTimeout: number,
  sniffing: Set<Socket>,
) {
  const [http1Connection] = h1.listeners('connection') as ((socket: Socket) => void)[];
  if (!http1Connection) throw new Error('node:http registered no connection listener');
  h1.removeAllListeners('connection');
  h1.on('connection', (socket: Socket) => {
    sniffing.add(socket);
    const slow = setTimeout(() => socket.destroy(), headersTimeout);
    // Bytes until they tell the protocols apart: a first segment of `P` (or any part of the
    // preface) could be either, so more is read (within the headers timeout) before choosing.
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const protocol = sniff(seen);
      if (protocol === 'undecided') return;
      socket.off('data', onData);
      clearTimeout(slow);
      sniffing.delete(socket);
      socket.pause();
      socket.unshift(seen);
      if (protocol === 'h2') h2c.emit('connection', socket);
      else {
        http1Connection.call(h1, socket);
        // node:http reads from the socket's handle directly from now on; the bytes put back go first.
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => {
      clearTimeout(slow);
      sniffing.delete(socket);
    });
    socket.on('error', () => undefined);
  });
}

/** Listening, and the three ways connections end: idle ones, all of them, and a graceful close. */
function controls(
  server: Server | Http2SecureServer,
  tls: TrafficTls | undefined,
  state: { closing: boolean; sessions: Set<Http2Session>; sniffing: Set<Socket> },
): TrafficServer {
  const { sessions, sniffing } = state;
  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(listenUrl(server, tls ? 'https' : 'http'));
        });
      }),
    closeIdleConnections() {
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      for (const s of sniffing) s.destroy();
    },
    closeAllConnections() {
      if ('closeAllConnections' in server) server.closeAllConnections();
      for (const s of sniffing) s.destroy();
      for (const s of sessions) s.destroy();
    },
    close() {
      state.closing = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // HTTP/2 clients are told to go (GOAWAY): streams in flight finish, then the session closes.
        for (const s of sessions) s.close();
        for (const s of sniffing) s.destroy();
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      });
    },
  };
}

/** An error answer, whatever the protocol; a response already started is cut short instead. */
export function respondError(res: TrafficResponse, e: GatewayError, closeConnection: boolean): number {
  if (res.headersSent) {
    res.destroy();
    return e.status;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-switchyard-error': e.code,
    ...e.headers,
  };
  if (closeConnection && (res as ServerResponse).shouldKeepAlive !== undefined) headers.connection = 'close';
  (res as ServerResponse).writeHead(e.status, headers);
  res.end(e.body());
  return e.status;
}
