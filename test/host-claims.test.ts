/**
 * Hosts are judged the way Istio resolves them: a short name, `name.namespace`, the FQDN and a
 * wildcard that covers it are the same host. Of two policies claiming one host, the older (then the
 * first by namespace/name) serves it; the other is reported, in any namespaces.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../core/compiler/compile.js';
import { affectedByHostChange, hostConflicts, hostForms, hostsOverlap } from '../core/compiler/hosts.js';
import type { TrafficPolicy } from '../core/resources/schema.js';

const policy = (
  namespace: string,
  name: string,
  hosts?: string[],
  creationTimestamp?: string,
): TrafficPolicy => ({
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) },
  spec: { service: name, port: 80, stable: 'v1', ...(hosts ? { hosts } : {}) },
});
const conflicts = (...policies: TrafficPolicy[]) =>
  compile({ policies, previews: [] })
    .problems.filter((p) => p.code === 'SY_HOST_CONFLICT')
    .map((p) => p.message);

describe('host claims', () => {
  it('reads short names, name.namespace and name.namespace.svc as the Service FQDN', () => {
    expect(hostForms('checkout', 'shop', 'cluster.local')).toEqual(['checkout.shop.svc.cluster.local']);
    expect(hostForms('checkout.shop', 'web', 'cluster.local')).toContain('checkout.shop.svc.cluster.local');
    expect(hostForms('checkout.shop.svc', 'web', 'cluster.local')).toEqual([
      'checkout.shop.svc.cluster.local',
    ]);
    expect(hostsOverlap('*.example.com', 'shop.example.com')).toBe(true);
    expect(hostsOverlap('*.example.com', '*.eu.example.com')).toBe(true);
    expect(hostsOverlap('*.example.com', 'example.com')).toBe(false);
    expect(hostsOverlap('*', 'anything.test')).toBe(true);
  });

  it('a policy claiming another namespace’s Service by its short name, name.namespace or FQDN conflicts', () => {
    // `checkout` in shop serves checkout.shop.svc.cluster.local by default.
    for (const spelled of ['checkout.shop', 'checkout.shop.svc', 'checkout.shop.svc.cluster.local'])
      expect(conflicts(policy('shop', 'checkout'), policy('tenant-b', 'grab', [spelled]))).toEqual([
        expect.stringMatching(
          new RegExp(
            `^host ${spelled.replaceAll('.', '\\.')} overlaps checkout\\.shop\\.svc\\.cluster\\.local, which TrafficPolicy shop/checkout already serves`,
          ),
        ),
      ]);
    // A short name in its own namespace is another Service: no conflict.
    expect(conflicts(policy('shop', 'checkout'), policy('tenant-b', 'grab', ['checkout']))).toEqual([]);
  });

  it('a wildcard covering a served host conflicts, whichever was written', () => {
    expect(
      conflicts(policy('a', 'shop', ['shop.example.com']), policy('b', 'all', ['*.example.com'])),
    ).toHaveLength(1);
  });

  it('the older policy serves the host, whatever the names; without creation times, the first by namespace/name', () => {
    const older = policy('z-team', 'old', ['shop.example.com'], '2026-01-01T00:00:00Z');
    const newer = policy('a-team', 'new', ['shop.example.com'], '2026-06-01T00:00:00Z');
    const found = conflicts(newer, older);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/which TrafficPolicy z-team\/old already serves/);
    const plan = compile({ policies: [newer, older], previews: [] });
    expect(plan.problems[0]?.source).toBeUndefined(); // no file: compiled from objects
    expect(conflicts(policy('b', 'x', ['h.test']), policy('a', 'y', ['h.test']))[0]).toMatch(
      /TrafficPolicy a\/y already serves/,
    );
  });
});

describe('rule 7 as the controller applies it', () => {
  const claimant = (name: string, ...hosts: string[]) => ({ name, hosts, namespace: 'shop' });
  const a = claimant('a', 'x.test');
  const b = claimant('b', 'x.test', 'y.test');
  const c = claimant('c', 'y.test');
  const d = claimant('d', 'other.test');

  it('a claimant that loses a host claims none of its hosts', () => {
    const lost = hostConflicts([a, b, c, d], (x) => x, 'cluster.local');
    expect([...lost].map(([loser, held]) => `${loser.name} lost ${held.mine} to ${held.owner.name}`)).toEqual(
      ['b lost x.test to a'],
    );
  });

  it('a change of hosts reaches those overlapping it, and those overlapping them', () => {
    const affected = affectedByHostChange(
      { hosts: ['x.test'], namespace: 'shop' },
      [b, c, d],
      (x) => x,
      'cluster.local',
    );
    expect(affected.map((x) => x.name)).toEqual(['b', 'c']);
  });
});
