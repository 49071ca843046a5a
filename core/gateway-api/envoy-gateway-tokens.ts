/**
 * Intercept tokens on Envoy Gateway (docs/gateway-api.md, "Intercept tokens"): on each Gateway
 * that serves routes requiring a token, a SecurityPolicy that verifies the token (optional: a
 * request without one passes; one that fails gets 401) and copies its `aud`, `intercept_header` and
 * `intercept_value` claims into the claim headers (TOKEN_CLAIM_HEADERS), with the route chosen
 * again after; and a ClientTrafficPolicy that removes those headers from each request as it
 * arrives, before anything routes by them (a client could otherwise write them itself).
 */
import type { KubeObject } from '../compiler/objects.js';
import { MANAGED_BY, MANAGED_BY_VALUE } from '../resources/labels.js';
import { TOKEN_CLAIM_HEADERS, TOKEN_COOKIE, TOKEN_HEADER, TOKEN_ISSUER } from '../tokens/intercept-token.js';
import type { TokenJwks } from '../tokens/keys.js';
import { ENVOY_GATEWAY_V1ALPHA1 } from './rate-limits.js';

export const ENVOY_GATEWAY_TOKEN_POLICY_NAME = 'switchyard-intercept-tokens';

/** `namespace/name` of a Gateway → the two objects beside it, in the order to write them. */
export function renderEnvoyGatewayTokenVerification(jwks: TokenJwks, gateway: string): KubeObject[] {
  const [namespace, name] = gateway.split('/', 2) as [string, string];
  const metadata = {
    name: ENVOY_GATEWAY_TOKEN_POLICY_NAME,
    namespace,
    labels: { [MANAGED_BY]: MANAGED_BY_VALUE },
  };
  const targetRefs = [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name }];
  return [
    {
      apiVersion: ENVOY_GATEWAY_V1ALPHA1,
      kind: 'ClientTrafficPolicy',
      metadata,
      spec: {
        targetRefs,
        headers: { earlyRequestHeaders: { remove: Object.values(TOKEN_CLAIM_HEADERS) } },
      },
    },
    {
      apiVersion: ENVOY_GATEWAY_V1ALPHA1,
      kind: 'SecurityPolicy',
      metadata,
      spec: {
        targetRefs,
        jwt: {
          optional: true,
          providers: [
            {
              name: 'switchyard',
              issuer: TOKEN_ISSUER,
              localJWKS: { type: 'Inline', inline: JSON.stringify({ keys: jwks.keys }) },
              extractFrom: { headers: [{ name: TOKEN_HEADER }], cookies: [TOKEN_COOKIE] },
              claimToHeaders: Object.entries(TOKEN_CLAIM_HEADERS).map(([claim, header]) => ({
                header,
                claim,
              })),
              recomputeRoute: true,
            },
          ],
        },
      },
    },
  ];
}
