/**
 * HTTP/2 and gRPC through the gateway: real @grpc/grpc-js servers behind it (`upstreamProtocol:
 * http2`), a real grpc-js client in front (h2c), routed by an intercept header sent as gRPC
 * metadata and by the canary split; status codes, trailers and server streaming intact; a rate
 * limit answered as gRPC clients expect. Plain HTTP/2 clients (h2c, and TLS with ALPN) reach
 * HTTP/1.1 upstreams; HTTP/1.1 clients still work on the same port.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, type IncomingHttpHeaders as Http2Headers } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { tempDir } from './support/temp.js';

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};
/** A gRPC service described by hand (messages as JSON): what is on the wire is gRPC all the same. */
const Echo = {
  who: {
    path: '/switchyard.test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  count: {
    path: '/switchyard.test.Echo/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(Echo, 'Echo');
type Reply = { version: string; authority: string };
type EchoStub = grpc.Client & {
  who(
    req: { fail?: boolean },
    metadata: grpc.Metadata,
    callback: (e: grpc.ServiceError | null, r?: Reply) => void,
  ): grpc.ClientUnaryCall;
  count(req: { n: number }, metadata: grpc.Metadata): grpc.ClientReadableStream<{ i: number }>;
};

async function grpcServer(
  version: string,
): Promise<{ url: string; calls: () => number; close(): Promise<void> }> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(Echo, {
    who: (call: grpc.ServerUnaryCall<{ fail?: boolean }, Reply>, done: grpc.sendUnaryData<Reply>) => {
      calls++;
      if (call.request.fail) {
        const trailer = new grpc.Metadata();
        trailer.set('x-reason', `${version} refused`);
        done({ code: grpc.status.NOT_FOUND, details: `${version}: no such thing`, metadata: trailer });
        return;
      }
      const trailer = new grpc.Metadata();
      trailer.set('x-served-by', version);
      done(
        null,
        {
          version,
          authority: call.getHost(),
        },
        trailer,
      );
    },
    count: (call: grpc.ServerWritableStream<{ n: number }, { i: number }>) => {
      let i = 0;
      const next = () => {
        if (i === call.request.n) {
          const trailer = new grpc.Metadata();
          trailer.set('x-counted', String(call.request.n));
          call.end(trailer);
          return;
        }
        call.write({ i: i++ });
        setTimeout(next, 5);
      };
      next();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    calls: () => calls,
    close: () => new Promise((r) => server.tryShutdown(() => r())),
  };
}

function who(client: EchoStub, md: Record<string, string> = {}, fail = false) {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise<{ reply?: Reply; error?: grpc.ServiceError; trailers: grpc.Metadata }>((resolve) => {
    let trailers = new grpc.Metadata();
    let outcome: { reply?: Reply; error?: grpc.ServiceError } | undefined;
    let status = false;
    const finish = () => {
      if (outcome && status) resolve({ ...outcome, trailers });
    };
    const call = client.who({ fail }, metadata, (error, reply) => {
      outcome = error ? { error } : reply ? { reply } : {};
      finish();
    });
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
      status = true;
      finish();
    });
  });
}

/** One plain HTTP/2 request over an open session: status, headers and body. */
function h2Get(
  session: ReturnType<typeof connect>,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Http2Headers; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': '/hello', ...headers });
    let body = '';
    let head: Http2Headers = {};
    req.on('response', (h) => {
      head = h;
    });
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
    req.on('error', reject);
    req.end();
  });
}

async function httpUpstream(version: string) {
  const server = createHttpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version, httpVersion: req.httpVersion, host: req.headers.host }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

const POLICIES = (canaryWeight: number) => `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo}
spec:
  service: echo
  port: 50051
  hosts: [echo.grpc.test]
  upstreamProtocol: http2
  stable: v1
  canary: {version: v2, weight: ${canaryWeight}}
  intercepts: [{name: alice, match: {header: x-debug-user, exact: alice}, to: {version: v3}}]
  mirror: {to: {version: shadow}, percent: 100, methods: [POST]}
  rateLimits:
    - {name: per-user, key: {header: x-user}, limit: 3, window: 1m}
---
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec:
  service: web
  port: 80
  hosts: [web.test]
  stable: v1
  intercepts: [{name: alice, match: {header: x-debug-user, exact: alice}, to: {version: v2}}]
`;

describe('gateway: gRPC and HTTP/2', () => {
  let servers: { url: string; close(): Promise<unknown> }[];
  let gw: TestGateway;
  let tlsGw: TestGateway;
  let client: EchoStub;
  let shadow: Awaited<ReturnType<typeof grpcServer>>;
  let upstreams: Record<string, string>;

  beforeAll(async () => {
    const [g1, g2, g3, w1, w2, gs] = await Promise.all([
      grpcServer('v1'),
      grpcServer('v2'),
      grpcServer('v3'),
      httpUpstream('v1'),
      httpUpstream('v2'),
      grpcServer('shadow'),
    ]);
    servers = [g1, g2, g3, w1, w2, gs];
    shadow = gs;
    upstreams = {
      'echo/v1': g1.url,
      'echo/v2': g2.url,
      'echo/v3': g3.url,
      'echo/shadow': gs.url,
      'web/v1': w1.url,
      'web/v2': w2.url,
    };
    gw = await startTestGateway(`${POLICIES(50)}${gatewayConfig(upstreams)}`);
    // A self-signed certificate made for this run, for TLS with ALPN.
    const dir = tempDir('switchyard-tls-');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=web.test',
        '-addext',
        'subjectAltName=DNS:web.test,DNS:echo.grpc.test',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    tlsGw = await startTestGateway(`${POLICIES(50)}${gatewayConfig(upstreams)}`, {
      tls: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
    });
    (globalThis as { __tlsCa?: Buffer }).__tlsCa = readFileSync(join(dir, 'cert.pem'));
    client = new EchoClient(gw.base.replace('http://', ''), grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo.grpc.test',
    }) as unknown as EchoStub;
  });
  afterAll(async () => {
    client?.close();
    await gw?.close();
    await tlsGw?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('routes a unary call by an intercept header sent as gRPC metadata, trailers intact', async () => {
    const alice = await who(client, { 'x-debug-user': 'alice' });
    expect(alice.error).toBeUndefined();
    expect(alice.reply).toEqual({ version: 'v3', authority: 'echo.grpc.test' });
    expect(alice.trailers.get('x-served-by')).toEqual(['v3']);
    const bob = await who(client, { 'x-debug-user': 'bob' });
    expect(['v1', 'v2']).toContain(bob.reply?.version);
  });

  it('splits calls by the canary weight', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const r = await who(client);
      const v = r.reply?.version ?? `error ${r.error?.code}`;
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['v1', 'v2']);
    // 50 % of 200: outside 60..140 happens with probability below 1e-8.
    expect(counts.v1).toBeGreaterThan(60);
    expect(counts.v1).toBeLessThan(140);
  });

  it('passes a gRPC error status, its message and its trailers through', async () => {
    const r = await who(client, { 'x-debug-user': 'alice' }, true);
    expect(r.error?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.error?.details).toBe('v3: no such thing');
    expect(r.trailers.get('x-reason')).toEqual(['v3 refused']);
  });

  it('streams a server-streaming call message by message, then its trailers', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-debug-user', 'alice');
    const call = client.count({ n: 20 }, metadata);
    const got: number[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      call.on('data', (m: { i: number }) => got.push(m.i));
      call.on('status', resolve);
      call.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.OK ? undefined : reject(e)));
    });
    expect(got).toEqual([...Array(20).keys()]);
    expect(status.code).toBe(grpc.status.OK);
    expect(status.metadata.get('x-counted')).toEqual(['20']);
  });

  it('mirrors calls to a shadow over HTTP/2 as well (gRPC calls are POSTs: the mirror names the method)', async () => {
    await eventually(() => shadow.calls() >= 200 || undefined); // the split test's calls
    const before = shadow.calls();
    for (let i = 0; i < 5; i++) expect(['v1', 'v2']).toContain((await who(client)).reply?.version);
    await eventually(() => shadow.calls() === before + 5 || undefined);
  });

  it('refuses calls over a rate limit as HTTP 429, which gRPC clients see as UNAVAILABLE', async () => {
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await who(client, { 'x-user': 'carol' }));
    expect(results.slice(0, 3).every((r) => r.reply !== undefined)).toBe(true);
    for (const r of results.slice(3)) {
      expect(r.error?.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.error?.details).toContain('429');
    }
  });

  it('answers plain HTTP/2 (h2c) requests from an HTTP/1.1 upstream, routed by the plan', async () => {
    const session = connect(gw.base);
    try {
      const plain = await h2Get(session, { ':authority': 'web.test' });
      expect(plain.status).toBe(200);
      expect(plain.headers['x-switchyard-upstream']).toBe('web/v1');
      expect(JSON.parse(plain.body)).toEqual({ version: 'v1', httpVersion: '1.1', host: 'web.test' });
      const alice = await h2Get(session, { ':authority': 'web.test', 'x-debug-user': 'alice' });
      expect(JSON.parse(alice.body).version).toBe('v2');
      const unknown = await h2Get(session, { ':authority': 'nope.test' });
      expect(unknown.status).toBe(404);
      expect(unknown.headers['x-switchyard-error']).toBe('SY_GW_NO_POLICY');
      // :authority is the authority (RFC 9113 §8.3.1): a host header beside it names nothing.
      const both = await h2Get(session, { ':authority': 'web.test', host: 'nope.test' });
      expect(both.status).toBe(200);
      expect(JSON.parse(both.body).host).toBe('web.test');
      const other = await h2Get(session, { ':authority': 'nope.test', host: 'web.test' });
      expect(other.status).toBe(404);
    } finally {
      session.close();
    }
  });

  it('still answers HTTP/1.1 on the same port', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${gw.base}/hello`, { headers: { host: 'web.test' } }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          b += c;
        });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body).version).toBe('v1');
  });

  it('with a certificate, speaks HTTP/2 to clients that offer h2 by ALPN (plain requests and gRPC)', async () => {
    const ca = (globalThis as { __tlsCa?: Buffer }).__tlsCa as Buffer;
    const port = new URL(tlsGw.base).port;
    const session = connect(`https://127.0.0.1:${port}`, { ca, servername: 'web.test' });
    try {
      const r = await h2Get(session, { ':authority': 'web.test', 'x-debug-user': 'alice' });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).version).toBe('v2');
      expect((session.socket as unknown as { alpnProtocol?: string }).alpnProtocol).toBe('h2');
    } finally {
      session.close();
    }
    const tlsClient = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(ca), {
      'grpc.default_authority': 'echo.grpc.test',
      'grpc.ssl_target_name_override': 'echo.grpc.test',
    }) as unknown as EchoStub;
    try {
      const alice = await who(tlsClient, { 'x-debug-user': 'alice' });
      expect(alice.reply?.version).toBe('v3');
    } finally {
      tlsClient.close();
    }
  });
});
