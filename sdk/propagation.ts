/**
 * For the services behind Switchyard. An intercept is decided at every hop: a request to service A
 * carrying `x-switchyard-preview: pr-42` (or `baggage: switchyard-preview=pr-42`, or a header
 * intercept) reaches B's preview only if A sends that header on its own call to B. Envoy and the
 * Switchyard gateway route each hop; they cannot know which outgoing call belongs to which incoming
 * request. This keeps the headers of the request being served and hands them to outgoing calls.
 *
 *   const propagate = propagation();                     // x-switchyard-preview and baggage
 *   server.on('request', (req, res) => propagate.run(req.headers, () => handle(req, res)));
 *   await fetch(url, { headers: { ...propagate.headers() } });   // anywhere below handle()
 *
 * With OpenTelemetry, W3C baggage already travels (its propagator forwards `baggage`); list the
 * intercept headers you use here as well.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';

/** The preview header and W3C baggage: what previews and baggage intercepts are matched on. */
export const DEFAULT_PROPAGATED = ['x-switchyard-preview', 'baggage'] as const;

/** The headers of `incoming` named in `names` (lowercase), to send on an outgoing call. */
export function propagatedHeaders(
  incoming: IncomingHttpHeaders,
  names: readonly string[] = DEFAULT_PROPAGATED,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = incoming[name.toLowerCase()];
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export interface Propagation {
  /** Runs `serve` with the headers of the request it serves kept for `headers()`. */
  run<T>(incoming: IncomingHttpHeaders, serve: () => T): T;
  /** The headers to send on an outgoing call made while serving a request; {} outside one. */
  headers(): Record<string, string>;
}

export function propagation(names: readonly string[] = DEFAULT_PROPAGATED): Propagation {
  const current = new AsyncLocalStorage<Record<string, string>>();
  return {
    run: (incoming, serve) => current.run(propagatedHeaders(incoming, names), serve),
    headers: () => ({ ...(current.getStore() ?? {}) }),
  };
}
