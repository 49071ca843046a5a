/**
 * Who the client is, by one rule for plain requests and WebSocket upgrades alike. `x-forwarded-*`
 * from a client are believed only when the peer that sent them is a trusted proxy (`--trust-proxy`:
 * `true`, a hop count, or addresses/CIDRs), as fastify and Envoy's `xff_num_trusted_hops` do.
 * Otherwise the peer is the client, and what it wrote in `x-forwarded-*` is replaced, so an
 * upstream (or a per-client rate limit) never takes a client's word for its own address.
 */

import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import type { TrafficRequest } from './traffic-server.js';

export type TrustProxy = boolean | number | string | string[];

export interface ClientAddress {
  /** The client's address: the peer, or the nearest untrusted address behind trusted proxies. */
  ip: string;
  /** Whether the peer is a trusted proxy, whose `x-forwarded-*` are kept (and appended to). */
  viaTrustedProxy: boolean;
}

export type ClientAddressRule = (req: TrafficRequest) => ClientAddress;

function trustFunction(trust: TrustProxy | undefined): (addr: string, hop: number) => boolean {
  if (trust === undefined || trust === false) return () => false;
  if (trust === true) return () => true;
  if (typeof trust === 'number') return (_addr, hop) => hop < trust;
  return proxyAddr.compile(typeof trust === 'string' ? trust.split(',').map((s) => s.trim()) : trust);
}

export function clientAddressRule(trust: TrustProxy | undefined): ClientAddressRule {
  const trusted = trustFunction(trust);
  return (req) => {
    const peer = req.socket.remoteAddress ?? '';
    if (!trusted(peer, 0)) return { ip: peer, viaTrustedProxy: false };
    // proxy-addr reads only the socket's address and x-forwarded-for, which both protocols have.
    return { ip: proxyAddr(req as IncomingMessage, trusted), viaTrustedProxy: true };
  };
}
