// A test service run inside a test network namespace (`ip netns exec`) that calls another service
// through its sidecar: `/` forwards the intercept headers with Switchyard's propagation helper
// (sdk/propagation.ts, as built into dist/), `/no-propagation` does not. It answers with what the
// next hop answered: its body, and its x-switchyard-upstream as x-next-upstream. Prints its port.
import { createServer, request } from 'node:http';
import { join } from 'node:path';

const [name, address, sidecar, nextHost] = process.argv.slice(2);
const { propagation } = await import(join(import.meta.dirname, '..', '..', 'dist', 'sdk', 'propagation.js'));
const propagate = propagation();

function callNext(headers) {
  return new Promise((resolve, reject) => {
    const url = new URL(sidecar);
    const req = request(
      { host: url.hostname, port: url.port, path: '/', headers: { ...headers, host: nextHost } },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ body, upstream: res.headers['x-switchyard-upstream'] ?? '' }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const server = createServer((req, res) => {
  req.resume();
  propagate.run(req.headers, async () => {
    try {
      const next = await callNext(req.url === '/no-propagation' ? {} : propagate.headers());
      res.writeHead(200, { 'x-upstream-name': name, 'x-next-upstream': next.upstream }).end(next.body);
    } catch (e) {
      res.writeHead(502).end(String(e));
    }
  });
});
server.listen(0, address, () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
