/**
 * requireToken in the gateway: a preview (by header, baggage or preview URL) and a token-guarded
 * intercept are reachable only with a token minted for that policy and signed by a key of the
 * gateway's JWKS (ES256 or EdDSA, several during a rotation). A token that fails is refused with
 * 401 whatever the host, as Envoy's jwt_authn does at an Istio gateway (test/mesh-tokens.test.ts
 * sends the same tokens through Envoy).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempFiles } from './support/cli.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { header, send } from './support/http.js';
import {
  type MintOptions,
  mint,
  mintForeignIssuer,
  type TestTokenKeys,
  testTokenKeys,
} from './support/tokens.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const COMMIT = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';
const WEB = 'default/web';
const PREVIEW_URL = 'pr-42--web.preview.test';
const TOKEN = 'x-switchyard-token';

describe('intercept tokens', () => {
  let gw: TestGateway;
  let ups: TestUpstream[];
  let keys: TestTokenKeys;
  const token = (o: Partial<MintOptions> = {}) =>
    mint({ value: 'pr-42', audience: WEB, key: keys.current, ...o });

  beforeAll(async () => {
    keys = await testTokenKeys();
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
      { tokenJwks: keys.jwks },
    );
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  const reply = (headers: Record<string, string>, host = 'web.test') => send(gw.base, { host, headers });
  const to = async (headers: Record<string, string>, host = 'web.test') =>
    header(await reply(headers, host), 'x-switchyard-upstream');

  it('ignores a plain header: guessing pr-42 does not reach the preview', async () => {
    expect(await to({ 'x-switchyard-preview': 'pr-42' })).toBe('web/v1');
    expect(await to({ baggage: 'switchyard-preview=pr-42' })).toBe('web/v1');
    expect(await to({ 'x-debug': 'alice' })).toBe('web/v1');
  });

  it('routes a valid token from the x-switchyard-token header or the cookie, and does not pass it on', async () => {
    expect(await to({ [TOKEN]: await token() })).toBe('web/pr-42-7f3a2c1');
    expect(await to({ [TOKEN]: await token({ header: 'x-debug', value: 'alice' }) })).toBe('web/v2');
    expect(await to({ cookie: `theme=dark; switchyard-token=${await token()}` })).toBe('web/pr-42-7f3a2c1');
    const preview = ups[1] as TestUpstream;
    const seen = preview.received.at(-1);
    expect(seen?.headers[TOKEN]).toBeUndefined();
    // A token for another header's claim opens nothing here.
    expect(await to({ [TOKEN]: await token({ header: 'x-debug' }) })).toBe('web/v1');
  });

  it('a token that fails is refused with 401 on any host: forged, expired, unknown key, another issuer', async () => {
    const failing = {
      forged: await token({ key: keys.stranger, kid: keys.current.kid }),
      expired: await token({ ttlSeconds: -120 }),
      unknownKey: await token({ key: keys.stranger }),
      otherIssuer: await mintForeignIssuer({ value: 'pr-42', audience: WEB, key: keys.current }),
      notAJwt: 'pr-42',
    };
    for (const [what, t] of Object.entries(failing))
      for (const host of ['web.test', 'other.test', 'nobody.test']) {
        const r = await reply({ [TOKEN]: t }, host);
        expect({ what, host, status: r.status, code: header(r, 'x-switchyard-error') }).toEqual({
          what,
          host,
          status: 401,
          code: 'SY_GW_TOKEN_INVALID',
        });
        expect(header(r, 'www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
      }
    // Within Envoy's 60 s of clock skew, an expired token still counts.
    expect(await to({ [TOKEN]: await token({ ttlSeconds: -30 }) })).toBe('web/pr-42-7f3a2c1');
  });

  it("a valid token minted for another policy (audience) opens nothing of this policy's", async () => {
    const forOther = await token({ audience: 'default/other' });
    expect(await to({ [TOKEN]: forOther })).toBe('web/v1');
    expect(await to({ [TOKEN]: await token({ audience: 'shop/web' }) })).toBe('web/v1');
    // ... and is not refused: it is valid, for the other policy.
    expect((await reply({ [TOKEN]: forOther })).status).toBe(200);
  });

  it('the token cookie never reaches the pod; the other cookies do, in their order', async () => {
    const preview = ups[1] as TestUpstream;
    const stable = ups[0] as TestUpstream;
    expect(await to({ cookie: `theme=dark; switchyard-token=${await token()}; lang=en` })).toBe(
      'web/pr-42-7f3a2c1',
    );
    expect(preview.received.at(-1)?.headers.cookie).toBe('theme=dark; lang=en');
    expect(await to({ cookie: `switchyard-token=${await token()}` })).toBe('web/pr-42-7f3a2c1');
    expect(preview.received.at(-1)?.headers.cookie).toBeUndefined();
    // Stripped on every route, token or not: a cookie named so is the gateway's.
    expect(await to({ cookie: 'switchyard-token=anything' }, 'nobody.test')).toBeUndefined();
    const r = await send(gw.base, { host: 'web.test', headers: { cookie: 'a=1;switchyard-token=' } });
    expect(r.status).toBe(401); // an empty token is a token that fails
    expect(stable.received.every((q) => !String(q.headers.cookie ?? '').includes('switchyard-token'))).toBe(
      true,
    );
  });

  it('every token a request carries must verify: a valid header does not excuse a forged cookie', async () => {
    const forged = await token({ key: keys.stranger, kid: keys.current.kid });
    const valid = await token();
    const both = await reply({ [TOKEN]: valid, cookie: `switchyard-token=${forged}` });
    expect([both.status, header(both, 'x-switchyard-error')]).toEqual([401, 'SY_GW_TOKEN_INVALID']);
    expect(JSON.parse(both.body).error.message).toMatch(/switchyard-token cookie/);
    const reverse = await reply({ [TOKEN]: forged, cookie: `switchyard-token=${valid}` });
    expect(reverse.status).toBe(401);
    // Both valid: routed by the header's claims.
    const debug = await token({ header: 'x-debug', value: 'alice' });
    expect(await to({ [TOKEN]: debug, cookie: `switchyard-token=${valid}`, 'x-debug': 'alice' })).toBe(
      'web/v2',
    );
  });

  it('the token exchange never redirects off the host, and only a real switchyard-token parameter is one', async () => {
    const t = await token();
    for (const [path, location] of [
      [`/.//evil.example/?switchyard-token=${t}`, '/evil.example/'],
      [`//evil.example/x?switchyard-token=${t}`, '/evil.example/x'],
      [`/%2F%2Fevil.example?switchyard-token=${t}`, '/%2F%2Fevil.example'],
    ] as const) {
      const r = await send(gw.base, { host: PREVIEW_URL, path });
      expect({ path, status: r.status, location: header(r, 'location') }).toEqual({
        path,
        status: 303,
        location,
      });
    }
    // The text inside another parameter's value is not an exchange: the request is served.
    const inside = await send(gw.base, {
      host: 'web.test',
      path: '/search?q=switchyard-token%3Dabc&next=x%26switchyard-token=1',
    });
    expect(inside.status).toBe(200);
    expect(header(inside, 'x-switchyard-upstream')).toBe('web/v1');
  });

  it('accepts every key of the JWKS: a rotation keeps the previous (EdDSA) key', async () => {
    expect(await to({ [TOKEN]: await token({ key: keys.previous }) })).toBe('web/pr-42-7f3a2c1');
  });

  it('a preview URL needs the token too; a browser exchanges it once for a host-only cookie', async () => {
    const bare = await send(gw.base, { host: PREVIEW_URL });
    expect(bare.status).toBe(404);
    expect(header(bare, 'x-switchyard-upstream')).toBeUndefined();

    const t = await token();
    const exchange = await send(gw.base, { host: PREVIEW_URL, path: `/cart?x=1&switchyard-token=${t}` });
    expect(exchange.status).toBe(303);
    expect(header(exchange, 'location')).toBe('/cart?x=1');
    const cookie = header(exchange, 'set-cookie') ?? '';
    expect(cookie).toMatch(
      /^switchyard-token=[\w.-]+; Path=\/; Max-Age=(59\d|600); HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(cookie).not.toMatch(/Domain=/i); // this host only

    const withCookie = await send(gw.base, {
      host: PREVIEW_URL,
      path: '/cart?x=1',
      headers: { cookie: `theme=dark; ${cookie.split(';')[0]}` },
    });
    expect(withCookie.status).toBe(200);
    expect(header(withCookie, 'x-switchyard-upstream')).toBe('web/pr-42-7f3a2c1');
    expect(await to({ [TOKEN]: t }, PREVIEW_URL)).toBe('web/pr-42-7f3a2c1');

    const wrong = await send(gw.base, {
      host: PREVIEW_URL,
      path: `/?switchyard-token=${await token({ audience: 'default/other' })}`,
    });
    expect(wrong.status).toBe(401);
    expect(header(wrong, 'x-switchyard-error')).toBe('SY_GW_TOKEN_INVALID');
    expect(header(wrong, 'set-cookie')).toBeUndefined();
  });

  it('token-key, token-jwks and token: a key made and published from the CLI signs what the gateway accepts', async () => {
    const made = await cli('token-key', '--algorithm', 'EdDSA');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const dir = tempFiles({ 'key.pem': made.stdout, 'current.pem': keys.currentPem });
    const published = await cli('token-jwks', join(dir, 'current.pem'), join(dir, 'key.pem'));
    expect(published.code).toBe(0);
    const jwks = JSON.parse(published.stdout) as { keys: { kty: string; kid: string; d?: string }[] };
    expect(jwks.keys.map((k) => k.kty)).toEqual(['EC', 'OKP']);
    expect(jwks.keys[0]?.kid).toBe(keys.current.kid);
    expect(jwks.keys.some((k) => k.d !== undefined)).toBe(false); // public halves only

    process.env.SWITCHYARD_INTERCEPT_TOKEN_KEY = keys.currentPem;
    try {
      const r = await cli('token', '--policy', 'web', '--value', 'pr-42', '--ttl', '5m');
      expect(r.code).toBe(0);
      expect(await to({ [TOKEN]: r.stdout.trim() })).toBe('web/pr-42-7f3a2c1');
      const long = await cli('token', '--policy', 'web', '--value', 'pr-42', '--ttl', '200h');
      expect(long.code).toBe(2);
      expect(long.stderr).toMatch(/--ttl: a token lives at most 168h/);
      process.env.SWITCHYARD_INTERCEPT_TOKEN_KEY = 'not a key';
      const bad = await cli('token', '--policy', 'web', '--value', 'pr-42');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/SWITCHYARD_INTERCEPT_TOKEN_KEY is not a private key: expected an EC P-256/);
    } finally {
      delete process.env.SWITCHYARD_INTERCEPT_TOKEN_KEY;
    }
    const missing = await cli('token', '--policy', 'web', '--value', 'pr-42');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/set SWITCHYARD_INTERCEPT_TOKEN_KEY/);
  });

  const startGateway = (...args: string[]) =>
    cli('gateway', '-c', gw.file, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', ...args);

  it('the gateway refuses to start with a JWKS that holds a private key or a shared secret (exit 2, file and path named)', async () => {
    const publicJwk = keys.jwks.keys[0] as object;
    const dir = tempFiles({
      'private.json': JSON.stringify({ keys: [{ ...publicJwk, d: 'secret' }] }),
      'hmac.json': JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'x' }] }),
    });
    const priv = await startGateway('--token-jwks', join(dir, 'private.json'));
    expect(priv.code).toBe(2);
    expect(priv.stderr).toMatch(
      /private\.json: keys\[0\]\.d: this is a private key: publish only public keys/,
    );
    const hmac = await startGateway('--token-jwks', join(dir, 'hmac.json'));
    expect(hmac.code).toBe(2);
    expect(hmac.stderr).toMatch(/hmac\.json: keys\[0\]: expected an EC P-256 \(ES256\) or OKP Ed25519/);
  });

  it('the retired HS256 secret is refused with what to do instead', async () => {
    process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET = 'an-old-shared-secret-of-at-least-32-bytes';
    try {
      const r = await startGateway();
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /SWITCHYARD_INTERCEPT_TOKEN_SECRET: HS256 intercept tokens with a shared secret were replaced by ES256\/EdDSA keys/,
      );
      const t = await cli('token', '--policy', 'web', '--value', 'pr-42');
      expect(t.code).toBe(2);
      expect(t.stderr).toMatch(/switchyard token-key/);
    } finally {
      delete process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET;
    }
  });
});
