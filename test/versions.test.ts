/**
 * A version is any legal Kubernetes label value (`1.27.3`, `2025.03`, `v3.0.0-beta.2`): it is
 * accepted, matched as written in pod labels, kept as written in upstream keys and
 * `x-switchyard-upstream`, and the names Istio and Kubernetes restrict (subset names, per-version
 * Services) are derived from it, DNS-safe and deterministic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { subsetName, versionServiceName } from '../core/compiler/names.js';
import { cli, tempFiles } from './support/cli.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { header, send } from './support/http.js';
import { checkIstioRules } from './support/istio-rules.js';
import { istioCrdsPath, validateWithCrdFile, validateWithModels } from './support/istio-schemas.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const POLICY = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: checkout, namespace: shop}
spec:
  service: checkout
  port: 80
  hosts: [shop.test]
  stable: 1.27.3
  canary: {version: v3.0.0-beta.2, weight: 0}
  intercepts: [{name: calver, match: {header: x-build, exact: calver}, to: {version: '2025.03'}}]
`;

describe('versions as Kubernetes label values', () => {
  it('derives DNS-safe, distinct subset and Service names, and keeps DNS labels as they are', () => {
    expect(subsetName('v2')).toBe('v2');
    for (const v of ['1.27.3', '2025.03', 'v3.0.0-beta.2', 'V2', 'v2_1'])
      expect(subsetName(v)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(subsetName('1.27.3')).toMatch(/^1-27-3-[0-9a-f]{6}$/);
    expect(subsetName('1.27.3')).toBe(subsetName('1.27.3')); // deterministic
    expect(subsetName('v2.0')).not.toBe(subsetName('v2_0'));
    expect(subsetName('V2')).not.toBe(subsetName('v2'));
    const long = versionServiceName('a'.repeat(40), `v${'1.'.repeat(20)}0`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).not.toBe(versionServiceName('a'.repeat(40), `v${'1.'.repeat(20)}1`));
  });

  it('render: subsets named DNS-safe that select the version as written; valid for Istio', async () => {
    const r = await cli('render', '-f', tempFiles({ 'p.yaml': POLICY }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS());
    const dr = objects.find((o) => o.kind === 'DestinationRule');
    expect(dr.spec.subsets).toEqual([
      { name: subsetName('1.27.3'), labels: { version: '1.27.3' } },
      { name: subsetName('v3.0.0-beta.2'), labels: { version: 'v3.0.0-beta.2' } },
      { name: subsetName('2025.03'), labels: { version: '2025.03' } },
    ]);
    const vs = objects.find((o) => o.kind === 'VirtualService');
    const split = vs.spec.http.find((h: { name: string }) => h.name === 'split');
    expect(split.route[0].destination.subset).toBe(subsetName('1.27.3'));
    expect(split.route[0].headers.response.set['x-switchyard-upstream']).toBe('checkout/1.27.3');
    expect(checkIstioRules(objects)).toEqual([]);
    for (const o of objects) validateWithModels(o);
    const crds = istioCrdsPath();
    if (crds) for (const o of objects) expect(validateWithCrdFile(o, crds)).toEqual([]);
  });

  describe('the gateway', () => {
    let gw: TestGateway;
    let ups: TestUpstream[];
    beforeAll(async () => {
      ups = await Promise.all(['checkout/1.27.3', 'checkout/2025.03'].map((n) => startUpstream(n)));
      gw = await startTestGateway(
        `${POLICY}${gatewayConfig(Object.fromEntries(ups.map((u) => [u.name, u.url])))}`,
      );
    });
    afterAll(async () => {
      await gw.close();
      await Promise.all(ups.map((u) => u.close()));
    });

    it('routes by upstream keys that keep the version as written', async () => {
      expect(header(await send(gw.base, { host: 'shop.test' }), 'x-switchyard-upstream')).toBe(
        'checkout/1.27.3',
      );
      const calver = await send(gw.base, { host: 'shop.test', headers: { 'x-build': 'calver' } });
      expect(header(calver, 'x-switchyard-upstream')).toBe('checkout/2025.03');
      expect(JSON.parse(calver.body).upstream).toBe('checkout/2025.03'); // that version's server answered
    });
  });
});
