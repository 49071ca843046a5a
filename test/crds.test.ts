/** `switchyard crds`: structural CRDs generated from the same schemas the validator uses. */

import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { cli } from './support/cli.js';

type Node = Record<string, unknown>;

/** The rules of a structural schema the API server enforces (apiextensions, "Specifying a structural schema"). */
function structuralViolations(node: Node, path: string, out: string[]): void {
  if (
    node.type === undefined &&
    !node['x-kubernetes-int-or-string'] &&
    !node['x-kubernetes-preserve-unknown-fields']
  )
    out.push(`${path}: no type`);
  if (node.properties && node.additionalProperties !== undefined)
    out.push(`${path}: properties together with additionalProperties`);
  for (const k of ['const', 'anyOf', 'oneOf', 'allOf', 'patternProperties', '$id', 'uniqueItems'])
    if (k in node) out.push(`${path}: ${k} is not allowed`);
  for (const [k, v] of Object.entries((node.properties as Record<string, Node>) ?? {}))
    structuralViolations(v, `${path}.${k}`, out);
  if (node.items) structuralViolations(node.items as Node, `${path}[]`, out);
  if (typeof node.additionalProperties === 'object')
    structuralViolations(node.additionalProperties as Node, `${path}{}`, out);
}

describe('crds', () => {
  it('prints the TrafficPolicy and Preview CRDs with structural schemas, status and printer columns', async () => {
    const r = await cli('crds');
    expect(r.code).toBe(0);
    const crds = parseAllDocuments(r.stdout).map((d) => d.toJS());
    expect(crds.map((c) => c.metadata.name)).toEqual([
      'trafficpolicies.switchyard.dev',
      'previews.switchyard.dev',
    ]);
    for (const crd of crds) {
      expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
      const version = crd.spec.versions[0];
      expect(version.name).toBe('v1alpha1');
      expect(version.subresources).toEqual({ status: {} });
      const out: string[] = [];
      structuralViolations(version.schema.openAPIV3Schema, crd.spec.names.kind, out);
      expect(out).toEqual([]);
    }
    const tp = crds[0].spec.versions[0];
    expect(tp.additionalPrinterColumns.map((c: { name: string }) => c.name)).toEqual([
      'Service',
      'Stable',
      'Canary',
      'Weight',
      'Ready',
      'Age',
    ]);
    const spec = tp.schema.openAPIV3Schema.properties.spec;
    expect(spec.properties.canary.properties.weight).toMatchObject({
      type: 'integer',
      minimum: 0,
      maximum: 100,
    });
    expect(Object.keys(spec.properties).sort()).toEqual(
      [
        'canary',
        'gateways',
        'hosts',
        'intercepts',
        'mirror',
        'port',
        'previews',
        'rateLimits',
        'retries',
        'service',
        'stable',
        'timeout',
        'upgrades',
        'upstreamProtocol',
        'versionLabel',
        'workloadLabels',
      ].sort(),
    );
    const pv = crds[1].spec.versions[0];
    expect(pv.additionalPrinterColumns.map((c: { name: string }) => c.name)).toContain('Phase');
    expect(pv.schema.openAPIV3Schema.properties.status.properties.phase.enum).toEqual([
      'Pending',
      'Deploying',
      'Ready',
      'Failed',
      'Expired',
    ]);
  });
});
