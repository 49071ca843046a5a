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
 */

import type { KubeObject } from '../compiler/objects.js';
import { MANAGED_BY, MANAGED_BY_VALUE } from '../resources/labels.js';
import { TOKEN_COOKIE, TOKEN_HEADER, TOKEN_ISSUER } from '../tokens/intercept-token.js';
import type { TokenJwks } from '../tokens/keys.js';

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
}

export function renderTokenAuthentication(opts: TokenAuthenticationOptions): KubeObject {
  return {
    apiVersion: SECURITY_V1,
    kind: 'RequestAuthentication',
    metadata: {
      name: TOKEN_AUTHENTICATION_NAME,
      namespace: opts.namespace ?? DEFAULT_ISTIO_ROOT_NAMESPACE,
      labels: { [MANAGED_BY]: MANAGED_BY_VALUE },
    },
    spec: {
      selector: { matchLabels: { ...(opts.selector ?? DEFAULT_TOKEN_GATEWAY_SELECTOR) } },
      jwtRules: [
        {
          issuer: TOKEN_ISSUER,
          jwks: JSON.stringify({ keys: opts.jwks.keys }),
          fromHeaders: [{ name: TOKEN_HEADER }],
          fromCookies: [TOKEN_COOKIE],
          forwardOriginalToken: false,
        },
      ],
    },
  };
}
