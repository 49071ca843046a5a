/**
 * requireToken in the gateway: a preview (by header, baggage or preview URL) and a token-guarded
 * intercept are reachable only with a valid token minted for that policy, with a bounded lifetime,
 * signed by the current key or the previous one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInterceptToken } from '../gateway/tokens.js';
import { cli } from './support/cli.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { header, send } from './support/http.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long';
const PREVIOUS = 'the-key-before-the-rotation-0123456789';
const COMMIT = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';
const WEB = 'default/web';
const PREVIEW_URL = 'pr-42--web.preview.test';

const mint = (claim: { header?: string; value: string; audience?: string }, ttl = 60, key = SECRET) =>
  signInterceptToken(
    key,
    { header: claim.header ?? 'x-switchyard-preview', value: claim.value, audience: claim.audience ?? WEB },
    ttl,
  );

describe('intercept tokens', () => {
  let gw: TestGateway;
  let ups: TestUpstream[];
  beforeAll(async () => {
    ups = await Promise.all(
      ['web/v1', 'web/pr-42-7f3a2c1', 'web/v2', 'other/v1'].map((n) => startUpstream(n)),
    );
    gw = await startTestGateway(
      `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec:
  service: web
  port: 80
  hosts: [web.test]
  stable: v1
  intercepts: [{name: debug, match: {header: x-debug, exact: alice}, to: {version: v2}, requireToken: true}]
  previews: {repository: acme/web, requireToken: true, domain: preview.test}
---
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: other}
spec: {service: other, port: 80, hosts: [other.test], stable: v1, previews: {repository: acme/other, requireToken: true}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: web-pr-42-7f3a2c1}
spec: {policy: web, repository: acme/web, pullRequest: 42, commit: ${COMMIT}}
${gatewayConfig(Object.fromEntries(ups.map((u) => [u.name, u.url])))}`,
      { interceptTokenKeys: { current: SECRET, previous: PREVIOUS } },
    );
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  const to = async (headers: Record<string, string>, host = 'web.test') =>
    header(await send(gw.base, { host, headers }), 'x-switchyard-upstream');

  it('ignores a plain header: guessing pr-42 does not reach the preview', async () => {
    expect(await to({ 'x-switchyard-preview': 'pr-42' })).toBe('web/v1');
    expect(await to({ baggage: 'switchyard-preview=pr-42' })).toBe('web/v1');
    expect(await to({ 'x-debug': 'alice' })).toBe('web/v1');
  });

  it('routes a valid token, and refuses a forged or expired one', async () => {
    expect(await to({ 'x-switchyard-preview': await mint({ value: 'pr-42' }) })).toBe('web/pr-42-7f3a2c1');
    expect(await to({ 'x-debug': await mint({ header: 'x-debug', value: 'alice' }) })).toBe('web/v2');
    const forged = await mint({ value: 'pr-42' }, 60, 'another-secret-of-at-least-32-bytes!!');
    expect(await to({ 'x-switchyard-preview': forged })).toBe('web/v1');
    expect(await to({ 'x-switchyard-preview': await mint({ value: 'pr-42' }, -120) })).toBe('web/v1');
    // A valid token for another header's claim does not count here.
    expect(await to({ 'x-switchyard-preview': await mint({ header: 'x-debug', value: 'pr-42' }) })).toBe(
      'web/v1',
    );
  });

  it("a token minted for another policy (audience) does not open this policy's preview", async () => {
    const forOther = await mint({ value: 'pr-42', audience: 'default/other' });
    expect(await to({ 'x-switchyard-preview': forOther })).toBe('web/v1');
    const forOtherNamespace = await mint({ value: 'pr-42', audience: 'shop/web' });
    expect(await to({ 'x-switchyard-preview': forOtherNamespace })).toBe('web/v1');
  });

  it('a token that lives longer than 7 days is refused, even while valid', async () => {
    expect(await to({ 'x-switchyard-preview': await mint({ value: 'pr-42' }, 8 * 24 * 3600) })).toBe(
      'web/v1',
    );
  });

  it('accepts tokens of the previous key during a rotation', async () => {
    const old = await mint({ value: 'pr-42' }, 60, PREVIOUS);
    expect(await to({ 'x-switchyard-preview': old })).toBe('web/pr-42-7f3a2c1');
  });

  it('a preview URL needs the token too; a browser exchanges it once for a host-only cookie', async () => {
    // Before: the preview URL opened the preview to anyone who knew it.
    const bare = await send(gw.base, { host: PREVIEW_URL });
    expect(bare.status).toBe(404);
    expect(header(bare, 'x-switchyard-upstream')).toBeUndefined();

    const token = await mint({ value: 'pr-42' });
    const exchange = await send(gw.base, { host: PREVIEW_URL, path: `/cart?x=1&switchyard-token=${token}` });
    expect(exchange.status).toBe(303);
    expect(header(exchange, 'location')).toBe('/cart?x=1');
    const cookie = header(exchange, 'set-cookie') ?? '';
    expect(cookie).toMatch(
      /^switchyard-token=[\w.-]+; Path=\/; Max-Age=(5\d|60); HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(cookie).not.toMatch(/Domain=/i); // this host only

    const withCookie = await send(gw.base, {
      host: PREVIEW_URL,
      path: '/cart?x=1',
      headers: { cookie: `theme=dark; ${cookie.split(';')[0]}` },
    });
    expect(withCookie.status).toBe(200);
    expect(header(withCookie, 'x-switchyard-upstream')).toBe('web/pr-42-7f3a2c1');
    // The header works on the preview URL as well.
    expect(await to({ 'x-switchyard-preview': token }, PREVIEW_URL)).toBe('web/pr-42-7f3a2c1');

    const wrong = await send(gw.base, {
      host: PREVIEW_URL,
      path: `/?switchyard-token=${await mint({ value: 'pr-42', audience: 'default/other' })}`,
    });
    expect(wrong.status).toBe(401);
    expect(header(wrong, 'x-switchyard-error')).toBe('SY_GW_TOKEN_INVALID');
    expect(header(wrong, 'set-cookie')).toBeUndefined();
  });

  it('switchyard token signs what the gateway accepts, bound to a policy, and needs a strong key from the environment', async () => {
    process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET = SECRET;
    try {
      const r = await cli('token', '--policy', 'web', '--value', 'pr-42', '--ttl', '5m');
      expect(r.code).toBe(0);
      expect(await to({ 'x-switchyard-preview': r.stdout.trim() })).toBe('web/pr-42-7f3a2c1');
      const long = await cli('token', '--policy', 'web', '--value', 'pr-42', '--ttl', '200h');
      expect(long.code).toBe(2);
      expect(long.stderr).toMatch(/--ttl: a token lives at most 168h/);
      process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET = 'short';
      const weak = await cli('token', '--policy', 'web', '--value', 'pr-42');
      expect(weak.code).toBe(2);
      expect(weak.stderr).toMatch(/is 5 bytes; at least 32/);
    } finally {
      delete process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET;
    }
    const missing = await cli('token', '--policy', 'web', '--value', 'pr-42');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/set SWITCHYARD_INTERCEPT_TOKEN_SECRET/);
  });

  it('the gateway refuses to start with a weak key (exit 2, the variable named)', async () => {
    process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET = 'a'.repeat(40);
    try {
      const r = await cli(
        'gateway',
        '-c',
        gw.file,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--host',
        '127.0.0.1',
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/SWITCHYARD_INTERCEPT_TOKEN_SECRET has fewer than 8 distinct characters/);
    } finally {
      delete process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET;
    }
  });
});
