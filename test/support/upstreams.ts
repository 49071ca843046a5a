/** Real HTTP upstreams in the test process: each records what it received and answers with its name. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface TestUpstream {
  name: string;
  url: string;
  port: number;
  received: Received[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const answerWithName =
  (name: string): Handler =>
  (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name });
    res.end(JSON.stringify({ upstream: name, method: req.method, url: req.url }));
  };

export async function startUpstream(
  name: string,
  handler: Handler = answerWithName(name),
  address = '127.0.0.1',
): Promise<TestUpstream> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://${address}:${port}`,
    port,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A port nothing listens on: bound (on every address), then released. Taken at random below the
 * kernel's ephemeral range (32768 and up): a port the kernel handed out would be handed out again,
 * as the source port of some other test's connection, before the caller (an Envoy binding its
 * listener, seen in CI) gets to it.
 */
export async function unusedPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = createServer();
    const bound = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '0.0.0.0', () => r(true));
    });
    if (!bound) continue;
    await new Promise((r) => s.close(r));
    return port;
  }
}
