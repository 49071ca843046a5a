// A test upstream run inside a test network namespace (`ip netns exec`): answers every request
// with its name (body and `x-upstream-name`) and the names of the request headers it got
// (`x-upstream-request-headers`), and prints its port once listening.
import { createServer } from 'node:http';

const [name, address] = process.argv.slice(2);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () =>
    res
      .writeHead(200, {
        'x-upstream-name': name,
        'x-upstream-request-headers': Object.keys(req.headers).join(','),
        'content-type': 'text/plain',
      })
      .end(name),
  );
});
server.listen(0, address, () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
