/**
 * The one RequestAuthentication an installation needs for `requireToken` in a mesh: it has the
 * ingress gateway's Envoy verify intercept tokens (core/tokens/intercept-token.ts) against the
 * installation's public keys, so that routes can match `@request.auth.claims.*`. Istio reads claims
 * in routes on gateways only, hence one object on the gateway workloads, not one per policy: it
 * lives in Istio's root namespace (where a selector reaches workloads of every namespace) and holds
 * nothing a tenant writes.
 *
 * Envoy reads the token only from the `x-switchyard-token` header and the `switchyard-token` cookie:
 * never from `Authorization`, which belongs to the applications behind the gateway. It drops the
 * header before forwarding (the Node gateway does too); a token that fails verification is refused
 * with 401 there.
 *
 * For Gateway API routes, which cannot read claims (`claimHeaders`), it also copies the token's
 * `aud`, `intercept_header` and `intercept_value` claims into fixed headers (TOKEN_CLAIM_HEADERS),
 * which the routes match. A valid token overwrites what a client sent there; without one, Envoy
 * removes them only after the route was chosen, so a client could write them itself and be routed
 * by them (measured with Envoy 1.40 by test/mesh-gateway-api-tokens.test.ts). An EnvoyFilter of the
 * same name therefore removes those headers from every request as it arrives, before routing
 * (Envoy's early header mutation), on the same gateway pods.
 */

import type { KubeObject } from '../compiler/objects.js';
import { MANAGED_BY, MANAGED_BY_VALUE } from '../resources/labels.js';
import { TOKEN_CLAIM_HEADERS, TOKEN_COOKIE, TOKEN_HEADER, TOKEN_ISSUER } from '../tokens/intercept-token.js';
import type { TokenJwks } from '../tokens/keys.js';
import { NETWORKING_V1ALPHA3 } from './objects.js';

export const SECURITY_V1 = 'security.istio.io/v1';
export const TOKEN_AUTHENTICATION_NAME = 'switchyard-intercept-tokens';
export const DEFAULT_ISTIO_ROOT_NAMESPACE = 'istio-system';
/** The labels of Istio's default ingress gateway pods. */
export const DEFAULT_TOKEN_GATEWAY_SELECTOR: Readonly<Record<string, string>> = { istio: 'ingressgateway' };

export interface TokenAuthenticationOptions {
  jwks: TokenJwks;
  /** Istio's root namespace (meshConfig.rootNamespace). */
  namespace?: string;
  /** Labels of the ingress gateway pods that serve the policies' hosts. */
  selector?: Readonly<Record<string, string>>;
  /** Copy claims into headers for routes that match headers only (Gateway API mode). */
  claimHeaders?: boolean;
}

/**
 * What the gateway needs to verify tokens, in the order to write them: with `claimHeaders`, the
 * EnvoyFilter first (no moment where claim headers count unguarded), then the RequestAuthentication.
 */
export function renderTokenVerification(opts: TokenAuthenticationOptions): KubeObject[] {
  return opts.claimHeaders
    ? [renderClaimHeaderRemoval(opts), renderTokenAuthentication(opts)]
    : [renderTokenAuthentication(opts)];
}

/** The kinds renderTokenVerification writes, and the controller removes when the keys go. */
export function tokenVerificationKinds(claimHeaders: boolean): { apiVersion: string; kind: string }[] {
  const authentication = { apiVersion: SECURITY_V1, kind: 'RequestAuthentication' };
  return claimHeaders
    ? [{ apiVersion: NETWORKING_V1ALPHA3, kind: 'EnvoyFilter' }, authentication]
    : [authentication];
}

function renderTokenAuthentication(opts: TokenAuthenticationOptions): KubeObject {
  return {
    apiVersion: SECURITY_V1,
    kind: 'RequestAuthentication',
    metadata: tokenObjectMeta(opts),
    spec: {
      selector: tokenSelector(opts),
      jwtRules: [
        {
          issuer: TOKEN_ISSUER,
          jwks: JSON.stringify({ keys: opts.jwks.keys }),
          fromHeaders: [{ name: TOKEN_HEADER }],
          fromCookies: [TOKEN_COOKIE],
          forwardOriginalToken: false,
          ...(opts.claimHeaders
            ? {
                outputClaimToHeaders: Object.entries(TOKEN_CLAIM_HEADERS).map(([claim, header]) => ({
                  header,
                  claim,
                })),
              }
            : {}),
        },
      ],
    },
  };
}

/** Removes the claim headers from each request as it arrives: before routing and before any filter. */
function renderClaimHeaderRemoval(opts: TokenAuthenticationOptions): KubeObject {
  return {
    apiVersion: NETWORKING_V1ALPHA3,
    kind: 'EnvoyFilter',
    metadata: tokenObjectMeta(opts),
    spec: {
      workloadSelector: { labels: tokenSelector(opts).matchLabels },
      configPatches: [
        {
          applyTo: 'NETWORK_FILTER',
          match: {
            context: 'GATEWAY',
            listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } },
          },
          patch: {
            operation: 'MERGE',
            value: {
              typed_config: {
                '@type':
                  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                early_header_mutation_extensions: [
                  {
                    name: 'envoy.http.early_header_mutation.header_mutation',
                    typed_config: {
                      '@type':
                        'type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation',
                      mutations: Object.values(TOKEN_CLAIM_HEADERS).map((remove) => ({ remove })),
                    },
                  },
                ],
              },
            },
          },
        },
      ],
    },
  };
}

function tokenObjectMeta(opts: TokenAuthenticationOptions) {
  return {
    name: TOKEN_AUTHENTICATION_NAME,
    namespace: opts.namespace ?? DEFAULT_ISTIO_ROOT_NAMESPACE,
    labels: { [MANAGED_BY]: MANAGED_BY_VALUE },
  };
}

function tokenSelector(opts: TokenAuthenticationOptions) {
  return { matchLabels: { ...(opts.selector ?? DEFAULT_TOKEN_GATEWAY_SELECTOR) } };
}
