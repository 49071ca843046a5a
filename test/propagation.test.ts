/** The helper services use to forward intercepts to the next hop (sdk/propagation.ts). */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { propagatedHeaders, propagation } from '../sdk/propagation.js';

describe('propagation for services', () => {
  it('keeps the preview header and baggage of the request being served, for calls made while serving it', async () => {
    const propagate = propagation();
    const seen: Record<string, string>[] = [];
    const server = createServer((req, res) =>
      propagate.run(req.headers, async () => {
        await new Promise((r) => setTimeout(r, 5)); // across an await, as a real handler
        seen.push(propagate.headers());
        res.end();
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const call = (headers: Record<string, string>) =>
      new Promise<void>((resolve) =>
        request({ port, host: '127.0.0.1', headers }, (res) => res.resume().on('end', resolve)).end(),
      );
    await Promise.all([
      call({ 'x-switchyard-preview': 'pr-42', 'x-other': '1' }),
      call({ baggage: 'switchyard-preview=pr-7' }),
    ]);
    server.close();
    expect(seen).toContainEqual({ 'x-switchyard-preview': 'pr-42' });
    expect(seen).toContainEqual({ baggage: 'switchyard-preview=pr-7' });
    expect(propagate.headers()).toEqual({}); // outside a request: nothing to forward
  });

  it('forwards the headers it is told to, repeated values joined', () => {
    expect(
      propagatedHeaders({ 'x-debug-user': 'alice', baggage: ['a=1', 'b=2'], cookie: 'secret=1' }, [
        'X-Debug-User',
        'baggage',
      ]),
    ).toEqual({ 'x-debug-user': 'alice', baggage: 'a=1, b=2' });
  });
});
