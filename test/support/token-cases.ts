/**
 * The intercept-token cases every backend answers alike (docs/routing.md, rule 7): a policy
 * `<ns>/web` whose preview `pr-42` (test host `web/pr-42-7f3a2c1`) and intercept `x-debug: alice`
 * (to `web/v3`) require a token, its stable version `web/v1`, and 13 requests to its host: no
 * token, valid tokens in each place, tokens for the wrong value or policy, and tokens that fail.
 */
import { header, type Reply, send } from './http.js';
import { type MintOptions, mint, mintForeignIssuer, type TestTokenKeys } from './tokens.js';

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
