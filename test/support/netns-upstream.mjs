// A test upstream run inside a test network namespace (`ip netns exec`): answers every request
// with its name (body and `x-upstream-name`), the names of the request headers it got
// (`x-upstream-request-headers`) and how many requests of the same `x-test-fail` key it has seen
// (`x-upstream-attempt`), and prints its port once listening. Test behaviours, by request header:
// `x-test-delay-ms: N` answers after N ms; `x-test-fail: <key>/<n>/<status>` answers <status> to
// the first <n> requests carrying that key (a retry sees the next attempt). A third argument N
// makes every Nth request answer 500 (a canary that fails a share of its traffic).
import { createServer } from 'node:http';

const [name, address, failEvery] = process.argv.slice(2);
const attempts = new Map();
let served = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const [key, failures, status] = String(req.headers['x-test-fail'] ?? '').split('/');
    const attempt = key ? (attempts.get(key) ?? 0) + 1 : 1;
    if (key) attempts.set(key, attempt);
    const answer = () => {
      if (res.destroyed) return;
      served++;
      const failing = key && attempt <= Number(failures);
      const broken = failEvery && served % Number(failEvery) === 0;
      res
        .writeHead(failing ? Number(status) : broken ? 500 : 200, {
          'x-upstream-name': name,
          'x-upstream-request-headers': Object.keys(req.headers).join(','),
          'x-upstream-attempt': String(attempt),
          'content-type': 'text/plain',
        })
        .end(name);
    };
    const delay = Number(req.headers['x-test-delay-ms'] ?? 0);
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
});
server.listen(0, address, () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
