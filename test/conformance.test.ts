/**
 * The conformance table both backends share: for each request, `switchyard explain` (the plan)
 * must give the same rule and destinations as an independent evaluation of the rendered
 * VirtualServices, and both must give the destination a user expects.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadAndCompile } from '../cli/input.js';
import { cli, EXAMPLES } from './support/cli.js';
import { CONFORMANCE_TABLE } from './support/conformance-table.js';
import { evaluateVirtualServices } from './support/virtual-service-eval.js';

function weights(ds: { upstream: string; weight: number }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of ds) if (d.weight > 0) out[d.upstream] = (out[d.upstream] ?? 0) + d.weight;
  return out;
}

describe('conformance: explain agrees with the rendered VirtualServices', () => {
  let rendered: never[];
  beforeAll(async () => {
    const r = await cli('render', '-f', EXAMPLES);
    expect(r.code).toBe(0);
    rendered = parseAllDocuments(r.stdout).map((d) => d.toJS()) as never[];
  });

  it('reaches every kind of route the examples compile to (preview host, pinned, latest, intercept, sticky, split)', async () => {
    const { plan } = await loadAndCompile([EXAMPLES]);
    const kindOf = new Map(plan.policies.flatMap((p) => p.routes.map((r) => [r.name, r.kind] as const)));
    const reached = new Set<string>();
    for (const row of CONFORMANCE_TABLE) {
      const args = ['explain', '-f', EXAMPLES, '--host', row.host, '-o', 'json', '-X', row.method ?? 'GET'];
      for (const [k, v] of Object.entries(row.headers ?? {})) args.push('-H', `${k}=${v}`);
      const route = (JSON.parse((await cli(...args)).stdout) as { route?: string }).route;
      if (route) reached.add(kindOf.get(route) ?? `unknown route ${route}`);
    }
    expect([...reached].sort()).toEqual([...new Set(kindOf.values())].sort());
  });

  it.each(CONFORMANCE_TABLE)('$name', async (row) => {
    const args = ['explain', '-f', EXAMPLES, '--host', row.host, '-o', 'json', '-X', row.method ?? 'GET'];
    for (const [k, v] of Object.entries(row.headers ?? {})) args.push('-H', `${k}=${v}`);
    const r = await cli(...args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const explained = JSON.parse(r.stdout) as {
      route?: string;
      destinations: { upstream: string; weight: number; setCookie?: string }[];
      mirror?: unknown;
    };
    const istio = evaluateVirtualServices(rendered, {
      host: row.host,
      method: row.method ?? 'GET',
      headers: row.headers ?? {},
    });

    expect(weights(explained.destinations)).toEqual(row.expect);
    expect(weights(istio.destinations)).toEqual(row.expect);
    expect(explained.route).toBe(istio.route);
    expect(explained.destinations.map((d) => d.setCookie)).toEqual(
      istio.destinations.map((d) => d.setCookie),
    );
    expect(explained.mirror !== undefined).toBe(istio.mirrored);
    if (row.mirrored !== undefined) expect(istio.mirrored).toBe(row.mirrored);
  });
});
