/**
 * The URL a listening server is reached at, from the address it is bound to: `0.0.0.0` stays
 * `0.0.0.0` (Fastify's own `listen` answer names 127.0.0.1 whatever the host, which told an
 * operator of `--admin-host 0.0.0.0` the admin port was loopback only).
 */
import type { AddressInfo } from 'node:net';

export function listenUrl(server: { address(): AddressInfo | string | null }, scheme = 'http'): string {
  const a = server.address() as AddressInfo;
  const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${scheme}://${shown}:${a.port}`;
}
