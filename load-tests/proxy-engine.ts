/**
 * The proxy hot path alone, for choosing a library by measurement and as the limit the gateway is
 * measured against: `http-proxy` (with a keep-alive agent), `@fastify/http-proxy`, or an undici
 * Pool (request, stream or dispatch API), each a bare forwarder to one upstream. Run by bench-gateway.ts:
 *   node load-tests/proxy-engine.ts <engine> <port> <upstream-url>   (Node strips the types itself)
 * (`none` answers by itself: the ceiling of one Node process, with no proxying).
 */
import { Agent, createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import fastifyHttpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import httpProxy from 'http-proxy';
import { type Dispatcher, Pool, util } from 'undici';

const [engine, portText, upstream] = process.argv.slice(2) as [string, string, string];
const port = Number(portText);
// Exits cleanly on SIGTERM, so a --cpu-prof profile is written (profile-gateway.ts).
process.once('SIGTERM', () => process.exit(0));

if (engine === 'none') {
  // No proxying at all: Node's http server answering by itself, the ceiling for any one-process
  // Node gateway on this machine.
  const body = '{"upstream":"ok"}\n';
  createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  }).listen(port, '127.0.0.1');
} else if (engine === 'http-proxy') {
  const proxy = httpProxy.createProxyServer({
    target: upstream,
    agent: new Agent({ keepAlive: true, maxSockets: 128 }),
    xfwd: true,
  });
  proxy.on('error', (_e, _req, res) => {
    if ('writeHead' in res) {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    }
  });
  createServer((req, res) => proxy.web(req, res)).listen(port, '127.0.0.1');
} else if (engine === 'fastify-http-proxy') {
  // What a fastify user reaches for: @fastify/http-proxy (undici underneath, through @fastify/reply-from).
  const app = Fastify({ logger: false });
  await app.register(fastifyHttpProxy, {
    upstream,
    undici: { connections: 128, pipelining: 1 },
  });
  await app.listen({ port, host: '127.0.0.1' });
} else if (engine === 'undici-dispatch' || engine === 'undici-dispatch-mirror') {
  // undici's lowest API: a handler that writes straight into the response (what the gateway uses).
  // `-mirror`: the same, and one GET in ten also copied to the upstream through a second pool, its
  // answer dropped (as the gateway's mirror does): the bare forwarder doing the bench plan's 10 %
  // mirror, for telling the mirror's own cost from the gateway's.
  const pool = new Pool(upstream, { connections: 128, pipelining: 1 });
  const shadow = engine === 'undici-dispatch-mirror' ? new Pool(upstream, { connections: 100 }) : undefined;
  const dropped = {
    onConnect() {},
    onHeaders: () => true,
    onData: () => true,
    onComplete() {},
    onError() {},
  } as unknown as Dispatcher.DispatchHandler;
  let requests = 0;
  createServer((req, res) => {
    const bodiless = req.method === 'GET' || req.method === 'HEAD';
    if (shadow && req.method === 'GET' && ++requests % 10 === 0)
      shadow.dispatch(
        { path: req.url ?? '/', method: 'GET', headers: req.headers as Record<string, string> },
        dropped,
      );
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: req.headers as Record<string, string>,
        body: bodiless ? null : req,
      },
      {
        onConnect() {},
        onHeaders(statusCode: number, raw: Buffer[], resume: () => void) {
          res.writeHead(statusCode, util.parseHeaders(raw) as Record<string, string>);
          res.on('drain', resume);
          return true;
        },
        onData: (chunk: Buffer) => res.write(chunk),
        onComplete() {
          res.end();
        },
        onError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      } as unknown as Dispatcher.DispatchHandler,
    );
  }).listen(port, '127.0.0.1');
} else if (engine === 'undici-stream') {
  // pool.stream writes the body straight into the response: no intermediate Readable.
  const pool = new Pool(upstream, { connections: 128, pipelining: 1 });
  createServer((req, res) => {
    pool
      .stream(
        {
          path: req.url ?? '/',
          method: (req.method ?? 'GET') as never,
          headers: req.headers as never,
          body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
        },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, headers as never);
          return res;
        },
      )
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  }).listen(port, '127.0.0.1');
} else {
  const pool = new Pool(upstream, { connections: 128, pipelining: 1 });
  createServer(async (req, res) => {
    try {
      const r = await pool.request({
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as never,
        headers: req.headers as never,
        body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
      });
      res.writeHead(r.statusCode, r.headers as never);
      await pipeline(r.body, res);
    } catch {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    }
  }).listen(port, '127.0.0.1');
}
