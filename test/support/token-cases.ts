/**
 * The intercept-token cases every backend answers alike (docs/routing.md, rule 7): a policy
 * `<ns>/web` whose preview `pr-42` (test host `web/pr-42-7f3a2c1`) and intercept `x-debug: alice`
 * (to `web/v3`) require a token, its stable version `web/v1`, and 13 requests to its host: no
 * token, valid tokens in each place, tokens for the wrong value or policy, and tokens that fail.
 */
import { compile } from '../../core/compiler/compile.js';
import { renderGatewayApi } from '../../core/gateway-api/render.js';
import { TOKEN_CLAIM_HEADERS } from '../../core/tokens/intercept-token.js';
import { header, type Reply, send } from './http.js';
import { serviceWithEndpoints } from './mesh.js';
import type { NetnsUpstream, TestNetns } from './netns.js';
import { load } from './random-policies.js';
import { type MintOptions, mint, mintForeignIssuer, type TestTokenKeys } from './tokens.js';

type Apply = (o: object) => Promise<unknown>;
const PREVIEW = 'web-pr-42-7f3a2c1';
const VERSIONS = ['v1', 'v3'] as const;

/** The policy of the token cases, on the Gateway `istio-system/public` for `web.test`, and its Preview. */
export function tokenPolicyDocs(ns: string): object[] {
  return [
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'web', namespace: ns },
      spec: {
        service: 'web',
        port: 80,
        hosts: ['web.test'],
        gateways: ['istio-system/public'],
        stable: 'v1',
        intercepts: [
          {
            name: 'debug',
            match: { header: 'x-debug', exact: 'alice' },
            to: { version: 'v3' },
            requireToken: true,
          },
        ],
        previews: { repository: 'acme/web', image: 'ghcr.io/acme/web:{sha}', requireToken: true },
      },
    },
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'Preview',
      metadata: { name: PREVIEW, namespace: ns },
      spec: {
        policy: 'web',
        repository: 'acme/web',
        pullRequest: 42,
        commit: '7f3a2c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49',
      },
    },
  ];
}

/**
 * The token cases' world in `ns`, as the controller would write it with a Gateway that verifies
 * tokens: test hosts for web/v1, web/v3 and the preview, the Services with their endpoints, and
 * the rendered routes (token routes written). Returns the test hosts by version (`preview` too).
 */
export async function tokenWorld(
  apply: Apply,
  hosts: TestNetns,
  ns: string,
): Promise<Record<string, NetnsUpstream>> {
  const upstreams: Record<string, NetnsUpstream> = {};
  for (const v of VERSIONS) upstreams[v] = await hosts.startUpstream(`web/${v}`);
  upstreams.preview = await hosts.startUpstream('web/pr-42-7f3a2c1');
  await serviceWithEndpoints(
    apply,
    { namespace: ns, name: 'web', port: 80, selector: { app: 'web' } },
    VERSIONS.map((v) => ({ labels: { app: 'web', version: v }, host: upstreams[v] as NetnsUpstream })),
  );
  const previewLabels = { 'switchyard.dev/preview': PREVIEW };
  await serviceWithEndpoints(apply, { namespace: ns, name: PREVIEW, port: 80, selector: previewLabels }, [
    { labels: previewLabels, host: upstreams.preview as NetnsUpstream },
  ]);
  const { resources, problems } = load(tokenPolicyDocs(ns));
  if (problems.length > 0) throw new Error(JSON.stringify(problems));
  const rendered = renderGatewayApi(compile(resources).plan, {
    channel: 'experimental',
    tokensVerified: true,
  });
  if (rendered.problems.length > 0) throw new Error(JSON.stringify(rendered.problems));
  for (const o of rendered.objects) await apply(o);
  for (const v of VERSIONS)
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `web--${v}-0`, namespace: ns, labels: { 'kubernetes.io/service-name': `web--${v}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: (upstreams[v] as NetnsUpstream).port, protocol: 'TCP' }],
      endpoints: [{ addresses: [(upstreams[v] as NetnsUpstream).address], conditions: { ready: true } }],
    });
  return upstreams;
}

/** The claim headers, as a client that forges them would send them. */
export function forgedClaimHeaders(
  aud: string,
  interceptHeader: string,
  value: string,
): Record<string, string> {
  return {
    [TOKEN_CLAIM_HEADERS.aud]: aud,
    [TOKEN_CLAIM_HEADERS.intercept_header]: interceptHeader,
    [TOKEN_CLAIM_HEADERS.intercept_value]: value,
  };
}

/**
 * Claim headers a client writes itself, without a token or beside a token for another policy or
 * value: each must take the stable route (`web/v1`).
 */
export async function forgedClaimCases(
  keys: TestTokenKeys,
  ns: string,
): Promise<[string, Record<string, string>][]> {
  const forOther = await mint({ value: 'pr-42', audience: `${ns}/other`, key: keys.current });
  const wrongValue = await mint({
    header: 'x-debug',
    value: 'bob',
    audience: `${ns}/web`,
    key: keys.current,
  });
  return [
    ['no token, the preview claims', forgedClaimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42')],
    ['no token, the intercept claims', forgedClaimHeaders(`${ns}/web`, 'x-debug', 'alice')],
    [
      'a token for another policy, this policy’s claims',
      { 'x-switchyard-token': forOther, ...forgedClaimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42') },
    ],
    [
      'a token for the wrong value, the right value’s claims',
      { 'x-switchyard-token': wrongValue, ...forgedClaimHeaders(`${ns}/web`, 'x-debug', 'alice') },
    ],
  ];
}

const T = 'x-switchyard-token';

export async function tokenCases(
  keys: TestTokenKeys,
  ns: string,
): Promise<[string, Record<string, string>][]> {
  const audience = `${ns}/web`;
  const token = (o: Partial<MintOptions> = {}) => mint({ value: 'pr-42', audience, key: keys.current, ...o });
  return [
    ['no token', { 'x-switchyard-preview': 'pr-42' }],
    ['valid (ES256)', { [T]: await token() }],
    ['valid, in the cookie', { cookie: `a=1; switchyard-token=${await token()}` }],
    ['valid, previous key (EdDSA)', { [T]: await token({ key: keys.previous }) }],
    ['intercept token', { [T]: await token({ header: 'x-debug', value: 'alice' }) }],
    ['intercept token, wrong value', { [T]: await token({ header: 'x-debug', value: 'bob' }) }],
    ['for another policy', { [T]: await token({ audience: `${ns}/other` }) }],
    ['expired 30 s ago (within clock skew)', { [T]: await token({ ttlSeconds: -30 }) }],
    ['expired', { [T]: await token({ ttlSeconds: -300 }) }],
    [
      'forged (a trusted kid, another key)',
      { [T]: await token({ key: keys.stranger, kid: keys.current.kid }) },
    ],
    ['unknown key', { [T]: await token({ key: keys.stranger }) }],
    ['another issuer', { [T]: await mintForeignIssuer({ value: 'pr-42', audience, key: keys.current }) }],
    ['not a JWT', { [T]: 'pr-42' }],
  ];
}

export interface TokenAnswer {
  status: number;
  upstream: string | null;
  /** A 401 names the failed token (`www-authenticate: Bearer … error="invalid_token"`), as Envoy's. */
  challenge: boolean;
  /** Whether the token header reached the upstream (it must not). */
  tokenForwarded: boolean;
}

const ok = (upstream: string): TokenAnswer => ({
  status: 200,
  upstream,
  challenge: false,
  tokenForwarded: false,
});
const refused: TokenAnswer = { status: 401, upstream: null, challenge: true, tokenForwarded: false };

/** What every backend answers to tokenCases. */
export const TOKEN_CASE_ANSWERS: Record<string, TokenAnswer> = {
  'no token': ok('web/v1'),
  'valid (ES256)': ok('web/pr-42-7f3a2c1'),
  'valid, in the cookie': ok('web/pr-42-7f3a2c1'),
  'valid, previous key (EdDSA)': ok('web/pr-42-7f3a2c1'),
  'intercept token': ok('web/v3'),
  'intercept token, wrong value': ok('web/v1'),
  'for another policy': ok('web/v1'),
  'expired 30 s ago (within clock skew)': ok('web/pr-42-7f3a2c1'),
  expired: refused,
  'forged (a trusted kid, another key)': refused,
  'unknown key': refused,
  'another issuer': refused,
  'not a JWT': refused,
};

/** What `base` answers to one case, sent to `host`. */
export async function tokenAnswer(
  base: string,
  host: string,
  headers: Record<string, string>,
): Promise<TokenAnswer> {
  const r: Reply = await send(base, { host, headers });
  return {
    status: r.status,
    // Envoy adds the matched route's response headers to its own 401 as well, so there
    // x-switchyard-upstream names the route, not where the request went (nowhere).
    upstream: r.status === 200 ? (header(r, 'x-switchyard-upstream') ?? null) : null,
    challenge: /error="invalid_token"/.test(header(r, 'www-authenticate') ?? ''),
    tokenForwarded: (header(r, 'x-upstream-request-headers') ?? '').split(',').includes(T),
  };
}
