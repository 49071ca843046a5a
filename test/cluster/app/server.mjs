// The cluster tests' app: answers every request with JSON naming its version (APP_VERSION, the
// "commit" its image was built from) and its pod; FAIL_PERCENT of requests get 500 (a canary
// that fails). /healthz is its readiness probe.
import { createServer } from 'node:http';

const version = process.env.APP_VERSION ?? 'unknown';
const failPercent = Number(process.env.FAIL_PERCENT ?? 0);
let served = 0;
const server = createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  served++;
  const fail = failPercent > 0 && served % Math.round(100 / failPercent) === 0;
  res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ version, pod: process.env.HOSTNAME, path: req.url, headers: req.headers }));
});
server.listen(Number(process.env.PORT ?? 8080), '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
