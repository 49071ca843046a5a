/** `switchyard render` over the examples: valid Istio objects, deterministic bytes, GitOps files. */
import { cpSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { cli, EXAMPLES, tempFiles } from './support/cli.js';
import { checkIstioRules } from './support/istio-rules.js';
import { istioCrdsPath, validateWithCrdFile, validateWithModels } from './support/istio-schemas.js';
import { tempDir } from './support/temp.js';
import { testTokenKeys } from './support/tokens.js';

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Record<string, never>;
};

async function renderExamples(...extra: string[]): Promise<{ text: string; objects: Obj[] }> {
  const r = await cli('render', '-f', EXAMPLES, ...extra);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return { text: r.stdout, objects: parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[] };
}

describe('render', () => {
  it('every example object validates against Istio 1.29 schemas (@kubernetes-models/istio)', async () => {
    const { objects } = await renderExamples();
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects)
      expect(() => validateWithModels(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
  });

  it.runIf(istioCrdsPath() || process.env.CI)(
    'every example object validates against the newest upstream CRDs (ISTIO_CRDS)',
    async () => {
      const path = istioCrdsPath();
      expect(path, 'CI must set ISTIO_CRDS to Istio crd-all.gen.yaml').toBeTruthy();
      const { objects } = await renderExamples();
      for (const o of objects)
        expect(validateWithCrdFile(o, path as string), `${o.kind} ${o.metadata.name}`).toEqual([]);
    },
  );

  it("every example object keeps Istio's documented rules", async () => {
    const { objects } = await renderExamples();
    expect(checkIstioRules(objects)).toEqual([]);
  });

  it('with --token-jwks, writes the RequestAuthentication first; token routes match its verified claims; all validate', async () => {
    const keys = await testTokenKeys();
    const dir = tempFiles({
      'jwks.json': JSON.stringify(keys.jwks),
      'web.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  service: web
  port: 80
  hosts: [web.test]
  gateways: [istio-system/ingress]
  stable: v1
  intercepts: [{name: debug, match: {header: x-debug, exact: alice}, to: {version: v2}, requireToken: true}]
`,
    });
    const r = await cli(
      'render',
      '-f',
      join(dir, 'web.yaml'),
      '--token-jwks',
      join(dir, 'jwks.json'),
      '--token-gateway-selector',
      'app=edge,istio=ingressgateway',
    );
    expect(r.stderr).toBe('');
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
    const [ra] = objects as unknown as {
      kind: string;
      metadata: { namespace: string };
      spec: { selector: object; jwtRules: { jwks: string; fromHeaders: object; fromCookies: object }[] };
    }[];
    expect(ra?.kind).toBe('RequestAuthentication');
    expect(ra?.metadata.namespace).toBe('istio-system');
    expect(ra?.spec.selector).toEqual({ matchLabels: { app: 'edge', istio: 'ingressgateway' } });
    const rule = ra?.spec.jwtRules[0];
    expect(JSON.parse(rule?.jwks ?? '{}')).toEqual(keys.jwks);
    // Never Authorization: that header is the applications'.
    expect(rule?.fromHeaders).toEqual([{ name: 'x-switchyard-token' }]);
    expect(rule?.fromCookies).toEqual(['switchyard-token']);
    const vs = objects.find((o) => o.kind === 'VirtualService') as unknown as {
      spec: { http: { name: string; match?: { headers: Record<string, object> }[] }[] };
    };
    expect(vs.spec.http.find((h) => h.name === 'intercept-debug')?.match?.[0]?.headers).toEqual({
      '@request.auth.claims.iss': { exact: 'switchyard' },
      '@request.auth.claims.aud': { exact: 'shop/web' },
      '@request.auth.claims.x-debug': { exact: 'alice' },
    });
    for (const o of objects) {
      expect(() => validateWithModels(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
      const crds = istioCrdsPath();
      if (crds) expect(validateWithCrdFile(o, crds), `${o.kind} ${o.metadata.name}`).toEqual([]);
    }

    const bad = await cli('render', '-f', join(dir, 'web.yaml'), '--token-jwks', join(dir, 'web.yaml'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--token-jwks .*web\.yaml: \(document\): expected a JWKS in JSON/);
  });

  it('labels every object with managed-by and its policy, and names every route', async () => {
    const { objects } = await renderExamples();
    for (const o of objects) {
      expect(o.metadata.labels['app.kubernetes.io/managed-by']).toBe('switchyard');
      expect(o.metadata.labels['switchyard.dev/policy']).toMatch(/^[a-z]/);
      if (o.kind === 'VirtualService') {
        for (const r of o.spec.http as unknown as {
          name?: string;
          route: { headers: { response: { set: Record<string, string> } } }[];
        }[]) {
          expect(r.name).toBeTruthy();
          for (const d of r.route)
            expect(d.headers.response.set['x-switchyard-upstream']).toMatch(/^[a-z0-9-]+\/[a-z0-9-]+$/);
        }
      }
    }
  });

  it('writes DestinationRules before the VirtualServices that use their subsets', async () => {
    const { objects } = await renderExamples();
    const order = objects.map((o) => `${o.kind}/${o.metadata.labels['switchyard.dev/policy']}`);
    for (const o of objects.filter(
      (x) => x.kind === 'VirtualService' && !x.metadata.name.endsWith('-previews'),
    )) {
      const dr = order.indexOf(`DestinationRule/${o.metadata.name}`);
      expect(dr, `a DestinationRule for ${o.metadata.name}`).toBeGreaterThanOrEqual(0); // -1 is "missing", not "first"
      expect(dr).toBeLessThan(order.indexOf(`VirtualService/${o.metadata.name}`));
    }
  });

  it('is deterministic: the same bytes twice, and whatever the order of the input files', async () => {
    const first = await renderExamples();
    const second = await renderExamples();
    expect(second.text).toBe(first.text);
    // The same files under other names (so another read order) and given one by one, reversed.
    const dir = tempDir('switchyard-order-');
    cpSync(EXAMPLES, dir, { recursive: true });
    const files = readdirSync(dir).sort();
    for (const [i, f] of files.entries()) {
      renameSync(join(dir, f), join(dir, `${String(files.length - i).padStart(2, '0')}-${f}`));
    }
    const args = readdirSync(dir)
      .sort()
      .reverse()
      .flatMap((f) => ['-f', join(dir, f)]);
    const shuffled = await cli('render', ...args);
    expect(shuffled.code).toBe(0);
    expect(shuffled.stdout).toBe(first.text);
  });

  it('-o json prints a kubectl List of the same objects', async () => {
    const yaml = await renderExamples();
    const json = await cli('render', '-f', EXAMPLES, '-o', 'json');
    expect(JSON.parse(json.stdout)).toEqual({ apiVersion: 'v1', kind: 'List', items: yaml.objects });
  });

  it('--out-dir writes one file per object for GitOps', async () => {
    const { objects } = await renderExamples();
    const out = tempDir('switchyard-out-');
    const r = await cli('render', '-f', EXAMPLES, '--out-dir', out);
    expect(r.code).toBe(0);
    const written = readdirSync(join(out, 'shop')).sort();
    expect(written).toHaveLength(objects.length);
    const vs = parseAllDocuments(readFileSync(join(out, 'shop', 'virtualservice-checkout.yaml'), 'utf8'));
    expect(vs).toHaveLength(1);
    expect(vs[0]?.toJS()).toEqual(
      objects.find((o) => o.kind === 'VirtualService' && o.metadata.name === 'checkout'),
    );
  });

  it('preview URLs get their own VirtualService on the preview Gateway', async () => {
    const { objects } = await renderExamples();
    const vs = objects.find(
      (o) => o.kind === 'VirtualService' && o.metadata.name === 'checkout-previews',
    ) as Obj;
    expect(vs.spec.gateways).toEqual(['istio-system/previews']);
    expect(vs.spec.hosts).toEqual([
      'pr-7-0a1b2c3--checkout.preview.example.com',
      'pr-42-1b2c3d4--checkout.preview.example.com',
      'pr-42-7f3a2c1--checkout.preview.example.com',
      'pr-7--checkout.preview.example.com',
      'pr-42--checkout.preview.example.com',
    ]);
  });

  it('upstreamProtocol: http2 (a gRPC service) makes the sidecars speak HTTP/2 to its pods', async () => {
    const dir = tempFiles({
      'grpc.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: orders, namespace: shop}
spec: {service: orders, port: 50051, stable: v1, upstreamProtocol: http2, canary: {version: v2, weight: 10}}
`,
    });
    const r = await cli('render', '-f', dir);
    expect(r.stderr).toBe('');
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
    const rule = objects.find((o) => o.kind === 'DestinationRule') as unknown as {
      spec: { trafficPolicy?: unknown };
    };
    expect(rule.spec.trafficPolicy).toEqual({ connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } });
    for (const o of objects)
      expect(() => validateWithModels(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
    const path = istioCrdsPath();
    if (path) for (const o of objects) expect(validateWithCrdFile(o, path), o.kind).toEqual([]);
    // Without it, the DestinationRule says nothing about the protocol (Istio's default: HTTP/1.1 unless the port says otherwise).
    const plain = await cli('render', '-f', join(EXAMPLES, 'intercept.yaml'));
    expect(plain.stdout).not.toContain('h2UpgradePolicy');
  });

  it('rate limits in an ambient namespace are an error, not a silent no-op', async () => {
    const r = await cli('render', '-f', join(EXAMPLES, 'rate-limits.yaml'), '--ambient-namespace', 'shop');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^.*rate-limits\.yaml:document 1: spec\.rateLimits: TrafficPolicy shop\/api has rate limits, but namespace shop is in ambient mode, where EnvoyFilters are silently ignored; .* \[SY_AMBIENT_UNSUPPORTED\]$/m,
    );
  });

  it('preview URLs without an Istio Gateway: the file gateway accepts them, render refuses them naming the file', async () => {
    const dir = tempFiles({
      'web.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, stable: v1, previews: {repository: acme/web, domain: preview.test}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: web-pr-1-abcdef1}
spec: {policy: web, repository: acme/web, pullRequest: 1, commit: abcdef1}
`,
    });
    expect((await cli('validate', '-f', dir)).code).toBe(0);
    const r = await cli('render', '-f', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /web\.yaml:document 1: spec\.previews\.domain: TrafficPolicy default\/web: preview URLs need an Istio Gateway in a mesh: set spec\.previews\.gateway or spec\.gateways .*\[SY_INVALID_VALUE\]$/m,
    );
  });

  describe('--mode gateway-api', () => {
    const files = ['canary.yaml', 'intercept.yaml', 'previews.yaml', 'mirror.yaml'].flatMap((f) => [
      '-f',
      join(EXAMPLES, f),
    ]);

    it('writes HTTPRoutes and per-version Services, the same bytes whatever the order of the files', async () => {
      const r = await cli(
        'render',
        '--mode',
        'gateway-api',
        '--gateway-api-channel',
        'experimental',
        ...files,
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
      expect(new Set(objects.map((o) => `${o.apiVersion} ${o.kind}`))).toEqual(
        new Set(['gateway.networking.k8s.io/v1 HTTPRoute', 'v1 Service']),
      );
      expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toContain(
        'HTTPRoute/checkout-preview-host-pr-42',
      );
      const reversed = [...files]
        .reverse()
        .flatMap((_x, i, all) => (i % 2 === 0 ? ['-f', all[i] as string] : []));
      const again = await cli(
        'render',
        '--mode',
        'gateway-api',
        '--gateway-api-channel',
        'experimental',
        ...reversed,
      );
      expect(again.stdout).toBe(r.stdout);
    });

    it('with the standard channel, a policy with retries is refused, naming the file and the channel', async () => {
      const r = await cli('render', '--mode', 'gateway-api', '-f', join(EXAMPLES, 'canary.yaml'));
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        /canary\.yaml:document 1: spec\.retries: TrafficPolicy shop\/payments: retries need the Gateway API's experimental channel .*\[SY_GATEWAY_API_UNSUPPORTED\]$/m,
      );
    });

    it('with token keys: the EnvoyFilter that removes forged claim headers, the RequestAuthentication that writes them, then routes that match them', async () => {
      const keys = await testTokenKeys();
      const dir = tempFiles({
        'jwks.json': JSON.stringify(keys.jwks),
        'web.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  service: web
  port: 80
  hosts: [web.example.com]
  gateways: [istio-system/public]
  stable: v1
  intercepts: [{name: debug, match: {header: x-debug, prefix: al}, to: {version: v2}, requireToken: true}]
`,
      });
      const r = await cli(
        'render',
        '--mode',
        'gateway-api',
        '-f',
        join(dir, 'web.yaml'),
        '--token-jwks',
        join(dir, 'jwks.json'),
      );
      expect(r.stderr).toBe('');
      const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
      expect(
        objects.slice(0, 2).map((o) => `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`),
      ).toEqual([
        'EnvoyFilter istio-system/switchyard-intercept-tokens',
        'RequestAuthentication istio-system/switchyard-intercept-tokens',
      ]);
      const removed = JSON.stringify(objects[0]?.spec);
      const copied = (objects[1]?.spec as unknown as { jwtRules: { outputClaimToHeaders: unknown }[] })
        .jwtRules[0];
      expect(copied?.outputClaimToHeaders).toEqual([
        { header: 'x-switchyard-claim-aud', claim: 'aud' },
        { header: 'x-switchyard-claim-intercept-header', claim: 'intercept_header' },
        { header: 'x-switchyard-claim-intercept-value', claim: 'intercept_value' },
      ]);
      for (const { header } of copied?.outputClaimToHeaders as { header: string }[])
        expect(removed).toContain(`{"remove":"${header}"}`);
      const route = objects.find((o) => o.kind === 'HTTPRoute');
      const rules = (
        route?.spec as unknown as { rules: { name: string; matches?: { headers?: unknown[] }[] }[] }
      ).rules;
      expect(rules.find((x) => x.name === 'intercept-debug')?.matches?.[0]?.headers).toEqual([
        { name: 'x-switchyard-claim-aud', type: 'Exact', value: 'shop/web' },
        { name: 'x-switchyard-claim-intercept-header', type: 'Exact', value: 'x-debug' },
        { name: 'x-switchyard-claim-intercept-value', type: 'RegularExpression', value: 'al.*' },
      ]);
    });
  });

  it('gateway-api on Envoy Gateway: --token-gateway names the Gateways that verify tokens; their policies come first', async () => {
    const keys = await testTokenKeys();
    const dir = tempFiles({
      'jwks.json': JSON.stringify(keys.jwks),
      'web.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  service: web
  port: 80
  hosts: [web.example.com]
  gateways: [infra/public]
  stable: v1
  intercepts: [{name: debug, match: {header: x-debug, exact: alice}, to: {version: v2}, requireToken: true}]
`,
    });
    const args = ['render', '--mode', 'gateway-api', '--envoy-gateway', '-f', join(dir, 'web.yaml')];
    const jwks = ['--token-jwks', join(dir, 'jwks.json')];
    const r = await cli(...args, ...jwks, '--token-gateway', 'infra/public');
    expect(r.stderr).toBe('');
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
    expect(objects.slice(0, 2).map((o) => `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`)).toEqual([
      'ClientTrafficPolicy infra/switchyard-intercept-tokens',
      'SecurityPolicy infra/switchyard-intercept-tokens',
    ]);
    expect(JSON.stringify(objects[0]?.spec)).toContain(
      '"earlyRequestHeaders":{"remove":["x-switchyard-claim-aud"',
    );
    const route = objects.find((o) => o.kind === 'HTTPRoute');
    expect((route?.spec as unknown as { rules: { name: string }[] }).rules.map((x) => x.name)).toEqual([
      'intercept-debug',
      'split',
    ]);
    // Keys without the Gateways that verify them, or a malformed name: refused, nothing written.
    for (const [extra, message] of [
      [[], /name the Gateways that verify intercept tokens/],
      [['--token-gateway', 'public'], /--token-gateway public: expected namespace\/name/],
    ] as const) {
      const bad = await cli(...args, ...jwks, ...extra);
      expect(bad.code).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(message);
    }
  });

  it('--mode gateway writes the per-version Services the Node gateway sends to', async () => {
    const r = await cli('render', '--mode', 'gateway', '-f', join(EXAMPLES, 'canary.yaml'));
    expect(r.code).toBe(0);
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()) as Obj[];
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Service/payments--v1',
      'Service/payments--v2',
    ]);
  });

  it('accepts a file that also holds a GatewayConfig and ignores that document', async () => {
    const dir = tempFiles({
      'all.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, stable: v1}
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayConfig
metadata: {name: local}
spec:
  upstreams: {web/v1: 'http://127.0.0.1:9001'}
`,
    });
    const r = await cli('render', '-f', dir);
    expect(r.code).toBe(0);
    expect(parseAllDocuments(r.stdout).map((d) => d.toJS().kind)).toEqual([
      'DestinationRule',
      'VirtualService',
    ]);
  });
});
