/** DESIGN.md rule 6 in the gateway: with requireToken a preview is reachable only with a valid signed token. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInterceptToken } from '../gateway/tokens.js';
import { cli } from './support/cli.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { header, send } from './support/http.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long';
const COMMIT = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';

describe('intercept tokens', () => {
  let gw: TestGateway;
  let ups: TestUpstream[];
  beforeAll(async () => {
    ups = await Promise.all(['web/v1', 'web/pr-42-7f3a2c1', 'web/v2'].map((n) => startUpstream(n)));
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
  previews: {repository: acme/web, requireToken: true}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: web-pr-42-7f3a2c1}
spec: {policy: web, repository: acme/web, pullRequest: 42, commit: ${COMMIT}}
${gatewayConfig(Object.fromEntries(ups.map((u) => [u.name, u.url])))}`,
      { interceptTokenSecret: SECRET },
    );
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all(ups.map((u) => u.close()));
  });

  const to = async (headers: Record<string, string>) =>
    header(await send(gw.base, { host: 'web.test', headers }), 'x-switchyard-upstream');

  it('ignores a plain header: guessing pr-42 does not reach the preview', async () => {
    expect(await to({ 'x-switchyard-preview': 'pr-42' })).toBe('web/v1');
    expect(await to({ 'x-debug': 'alice' })).toBe('web/v1');
  });

  it('routes a valid token, and refuses a forged or expired one', async () => {
    expect(
      await to({
        'x-switchyard-preview': await signInterceptToken(SECRET, 'x-switchyard-preview', 'pr-42', 60),
      }),
    ).toBe('web/pr-42-7f3a2c1');
    expect(await to({ 'x-debug': await signInterceptToken(SECRET, 'x-debug', 'alice', 60) })).toBe('web/v2');
    expect(
      await to({
        'x-switchyard-preview': await signInterceptToken(
          'another-secret-of-at-least-32-bytes!!',
          'x-switchyard-preview',
          'pr-42',
          60,
        ),
      }),
    ).toBe('web/v1');
    expect(
      await to({
        'x-switchyard-preview': await signInterceptToken(SECRET, 'x-switchyard-preview', 'pr-42', -10),
      }),
    ).toBe('web/v1');
    // A valid token for another header's claim does not count here.
    expect(
      await to({ 'x-switchyard-preview': await signInterceptToken(SECRET, 'x-debug', 'pr-42', 60) }),
    ).toBe('web/v1');
  });

  it('switchyard token signs what the gateway accepts, and needs the secret from the environment', async () => {
    process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET = SECRET;
    try {
      const r = await cli('token', '--value', 'pr-42', '--ttl', '5m');
      expect(r.code).toBe(0);
      expect(await to({ 'x-switchyard-preview': r.stdout.trim() })).toBe('web/pr-42-7f3a2c1');
    } finally {
      delete process.env.SWITCHYARD_INTERCEPT_TOKEN_SECRET;
    }
    const missing = await cli('token', '--value', 'pr-42');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/set SWITCHYARD_INTERCEPT_TOKEN_SECRET/);
  });
});
