/**
 * The gateway's HTTP/1.1 front door from a raw socket (issue 27): what a client can put on the
 * wire that a well-behaved library never sends. Every case is sent to the gateway and to a real
 * Envoy in front of the same pod, and each one's status is asserted: where they differ, the case
 * says why (docs/security.md has the table). The pod records what reached it, so a case that must
 * not reach the pod proves it did not.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EnvoyFront, startEnvoyFront } from './support/envoy-front.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { MESH_SKIP_REASON, meshAssets } from './support/mesh.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  upgrade?: string;
}

/**
 * A pod that answers what it received as JSON, accepts any Upgrade except on /decline (where it
 * answers 401, as an app that wants a login first), and echoes the bytes of an accepted tunnel.
 */
async function recordingPod() {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(s));
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: '',
      upgrade: String(req.headers.upgrade),
    });
    if (req.url?.startsWith('/decline')) {
      socket.end(
        'HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nlogin first\n',
      );
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: upgrade\r\n\r\n`,
    );
    socket.on('data', (d) => socket.write(`echo:${d}`));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

type Part = string | { waitMs: number } | { waitFor: string };

/**
 * Sends the parts in order (pausing, or waiting until the answer so far holds a string) and
 * returns all the gateway sent until it closed the connection or went quiet for `quietMs`.
 */
function exchange(port: number, parts: Part[], quietMs = 400): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      socket.destroy();
      resolve(got);
    };
    const waiters: { text: string; go: () => void }[] = [];
    socket.on('data', (d) => {
      got += d.toString('latin1');
      for (const w of waiters.splice(0))
        if (got.includes(w.text)) w.go();
        else waiters.push(w);
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    socket.on('close', done);
    socket.on('error', reject);
    socket.once('connect', async () => {
      for (const p of parts) {
        if (typeof p === 'string') socket.write(p, 'latin1');
        else if ('waitMs' in p) await new Promise((r) => setTimeout(r, p.waitMs));
        else if (!got.includes(p.waitFor))
          await new Promise<void>((go) => waiters.push({ text: p.waitFor, go }));
      }
      quiet = setTimeout(done, quietMs);
    });
  });
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
const HEADERS_KB = 16;
const WS = 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

interface Case {
  name: string;
  send: Part[];
  /** The final status each answers with; undefined: not sent there. */
  gateway: number;
  envoy: number | undefined;
  /** Required where the two differ. */
  why?: string;
  /** What the pod must have received (each server's run is checked alone). */
  pod?: (seen: Seen[]) => void;
}

const refusedBeforeThePod = (seen: Seen[]) => expect(seen).toEqual([]);

const CASES: Case[] = [
  {
    name: 'Expect: 100-continue: 100 first, the body reaches the pod, Expect does not',
    send: [
      'POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n',
      { waitFor: '100 Continue' },
      'hello',
    ],
    gateway: 200,
    envoy: 200,
    pod: (seen) => expect(seen.map((s) => [s.body, s.headers.expect])).toEqual([['hello', undefined]]),
  },
  {
    name: 'Expect: something else is 417',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nExpect: foo\r\nConnection: close\r\n\r\n'],
    gateway: 417,
    envoy: 417,
    pod: refusedBeforeThePod,
  },
  {
    name: 'Upgrade: h2c is served as a plain request, and the bytes after it as the next one (no tunnel)',
    // Sent after the first answer, as an h2c client would: Node drops bytes pipelined behind an
    // Upgrade request in the same segment (they are not served, through a tunnel or otherwise).
    send: [
      'GET / HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
      { waitFor: '"url":"/"' },
      'GET /inside HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n',
    ],
    gateway: 200,
    envoy: 200,
    pod: (seen) => {
      expect(seen.map((s) => [s.url, s.upgrade, s.headers.upgrade, s.headers['http2-settings']])).toEqual([
        ['/', undefined, undefined, undefined],
        ['/inside', undefined, undefined, undefined],
      ]);
    },
  },
  {
    name: 'an Upgrade the policy does not allow is 403',
    send: ['GET /t HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: x-custom\r\n\r\n'],
    gateway: 403,
    envoy: 403,
    pod: refusedBeforeThePod,
  },
  {
    name: 'an Upgrade the pod declines reaches the client as the pod sent it',
    send: [
      `GET /decline HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${WS}\r\n`,
    ],
    gateway: 401,
    envoy: 401,
  },
  {
    name: "absolute form: the URI's authority wins over Host; the pod gets the origin form, path as sent",
    send: ['GET http://web.test/x/../y?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n'],
    gateway: 200,
    envoy: 200,
    pod: (seen) => expect(seen.map((s) => [s.url, s.headers.host])).toEqual([['/x/../y?q=1', 'web.test']]),
  },
  {
    name: 'an absolute form that is not an http(s) URL is 400',
    send: ['GET ftp://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'two Host headers',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nHost: tunnel.test\r\n\r\n'],
    gateway: 400,
    envoy: 404,
    why: 'RFC 9112 §3.2 requires 400; Envoy joins the two values and no virtual host has that name',
    pod: refusedBeforeThePod,
  },
  {
    name: 'a Connection header that names Host is 400',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nConnection: host\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'headers a Connection header names do not reach the pod; the others do',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nConnection: x-hop, close\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n'],
    gateway: 200,
    envoy: 200,
    pod: (seen) =>
      expect(seen.map((s) => [s.headers['x-hop'], s.headers['x-kept']])).toEqual([[undefined, '2']]),
  },
  {
    name: 'a first segment of one byte, P, then the rest of a POST',
    send: [
      'P',
      { waitMs: 100 },
      'OST /p HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
    ],
    gateway: 200,
    envoy: 200,
    pod: (seen) => expect(seen.map((s) => s.body)).toEqual(['hi']),
  },
  {
    name: 'Content-Length with Transfer-Encoding (smuggling)',
    send: [
      'POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'two different Content-Lengths',
    send: ['POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nhello'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'a Transfer-Encoding whose last coding is not chunked',
    send: ['POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
    gateway: 400,
    envoy: 501,
    why: "Node's parser refuses the framing as malformed (RFC 9112 §6.3 says 400); Envoy says it does not implement the coding",
    pod: refusedBeforeThePod,
  },
  {
    name: 'a chunk size that is not hex',
    send: ['POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'a space between a header name and its colon',
    send: ['GET / HTTP/1.1\r\nHost : web.test\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'an obsolete folded header line',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nX-A: 1\r\n folded\r\n\r\n'],
    gateway: 400,
    envoy: 200,
    why: "RFC 9112 §5.2 lets a server refuse obs-fold with 400, and Node's parser does; Envoy unfolds it",
    pod: refusedBeforeThePod,
  },
  {
    name: 'bare LF line ends',
    send: ['GET / HTTP/1.1\nHost: web.test\n\n'],
    gateway: 400,
    envoy: 200,
    why: "Node's parser takes CRLF only (RFC 9112 §2.2 allows either); a lenient parser is where smuggling starts",
    pod: refusedBeforeThePod,
  },
  {
    name: 'a NUL in a header value',
    send: ['GET / HTTP/1.1\r\nHost: web.test\r\nX-A: a\0b\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'a lower-case method',
    send: ['get / HTTP/1.1\r\nHost: web.test\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'an unknown HTTP version',
    send: ['GET / HTTP/1.7\r\nHost: web.test\r\n\r\n'],
    gateway: 400,
    envoy: 426,
    why: "Node's parser refuses the request line; Envoy asks for an upgrade it would accept",
    pod: refusedBeforeThePod,
  },
  {
    name: 'HTTP/1.1 without a Host',
    send: ['GET / HTTP/1.1\r\n\r\n'],
    gateway: 400,
    envoy: 400,
    pod: refusedBeforeThePod,
  },
  {
    name: 'HTTP/1.0 without a Host',
    send: ['GET / HTTP/1.0\r\n\r\n'],
    gateway: 404,
    envoy: 426,
    why: "the gateway serves HTTP/1.0 (Envoy's accept_http_10 is off by default): with no Host it names no policy",
    pod: refusedBeforeThePod,
  },
  {
    name: 'CONNECT is not a route',
    send: ['CONNECT web.test:443 HTTP/1.1\r\nHost: web.test:443\r\n\r\n'],
    gateway: 404,
    envoy: 404,
    pod: refusedBeforeThePod,
  },
  {
    name: 'OPTIONS * is not a route',
    send: ['OPTIONS * HTTP/1.1\r\nHost: web.test\r\n\r\n'],
    gateway: 404,
    envoy: 404,
    pod: refusedBeforeThePod,
  },
  {
    name: `headers over ${HEADERS_KB} KiB`,
    send: [`GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: ${'a'.repeat(HEADERS_KB * 1024 + 100)}\r\n\r\n`],
    gateway: 431,
    envoy: 431,
    pod: refusedBeforeThePod,
  },
  {
    name: `a request line over ${HEADERS_KB} KiB`,
    send: [`GET /${'a'.repeat(HEADERS_KB * 1024 + 100)} HTTP/1.1\r\nHost: web.test\r\n\r\n`],
    gateway: 431,
    envoy: 431,
    pod: refusedBeforeThePod,
  },
];

const lastStatus = (answer: string) => Number([...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].at(-1)?.[1]);

describe('HTTP/1.1 from a raw socket: the gateway and Envoy side by side', () => {
  let pod: Awaited<ReturnType<typeof recordingPod>>;
  let gw: TestGateway;
  let envoy: EnvoyFront | undefined;

  beforeAll(async () => {
    pod = await recordingPod();
    gw = await startTestGateway(
      `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, hosts: [web.test], stable: v1}
---
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: tunnel}
spec: {service: tunnel, port: 80, hosts: [tunnel.test], stable: v1, upgrades: [websocket, x-custom]}
${gatewayConfig({ 'web/v1': pod.url, 'tunnel/v1': pod.url })}`,
      { maxHeaderSize: HEADERS_KB * 1024 },
    );
    const assets = meshAssets();
    if (assets)
      envoy = await startEnvoyFront(assets, new URL(pod.url), {
        hosts: ['web.test'],
        maxRequestHeadersKb: HEADERS_KB,
      });
    else if (process.env.CI) throw new Error(`CI=true, but ${MESH_SKIP_REASON}`);
    else console.warn(MESH_SKIP_REASON);
  }, 120_000);
  beforeEach(() => {
    pod.seen.length = 0;
  });
  afterAll(async () => {
    await gw.close();
    await envoy?.stop();
    await pod.close();
  });

  it('every difference from Envoy says why', () => {
    for (const c of CASES)
      if (c.envoy !== undefined && c.envoy !== c.gateway)
        expect({ case: c.name, why: c.why }).toEqual({ case: c.name, why: expect.any(String) });
  });

  for (const c of CASES) {
    it(`gateway: ${c.name}: ${c.gateway}`, async () => {
      const answer = await exchange(Number(new URL(gw.base).port), c.send);
      expect(lastStatus(answer)).toBe(c.gateway);
      c.pod?.(pod.seen);
    });
    if (c.envoy !== undefined)
      it.runIf(meshAssets() !== undefined || process.env.CI)(`envoy: ${c.name}: ${c.envoy}`, async () => {
        const answer = await exchange((envoy as EnvoyFront).port, c.send);
        expect(lastStatus(answer)).toBe(c.envoy);
        // Where the two answer alike, the pod sees alike.
        if (c.envoy === c.gateway) c.pod?.(pod.seen);
      });
  }

  it('gateway: a protocol the policy lists is tunnelled both ways, with x-switchyard-upstream', async () => {
    const ok = await exchange(Number(new URL(gw.base).port), [
      'GET /t HTTP/1.1\r\nHost: tunnel.test\r\nConnection: Upgrade\r\nUpgrade: x-custom\r\n\r\n',
      { waitFor: '\r\n\r\n' },
      'ping',
    ]);
    expect(statusOf(ok)).toBe(101);
    expect(ok).toMatch(/x-switchyard-upstream: tunnel\/v1/);
    expect(ok).toContain('echo:ping');
  });

  it('gateway: refusals say why in x-switchyard-error', async () => {
    const port = Number(new URL(gw.base).port);
    const upgrade = await exchange(port, [
      'GET / HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: x-custom\r\n\r\n',
    ]);
    expect(upgrade).toMatch(/x-switchyard-error: SY_GW_UPGRADE_REFUSED/);
    const hosts = await exchange(port, ['GET / HTTP/1.1\r\nHost: web.test\r\nHost: tunnel.test\r\n\r\n']);
    expect(hosts).toMatch(/more than one Host header/);
  });
});
