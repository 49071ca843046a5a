/**
 * Random valid policies and previews for property tests (fast-check): the property test checks
 * them through the compiler, the renderer and the VirtualService model; the mesh property test
 * sends a fixed sample of them through real Envoy.
 */
import fc from 'fast-check';
import { readResources } from '../../core/resources/validate.js';

const VERSIONS = ['v1', 'v2', 'v3', 'blue', 'green', 'canary-2026'];
const REGEXES = [
  '[a-z]+',
  'alice|bob',
  '[0-9]{1,3}\\.[0-9]+',
  '.*-beta',
  'user-(1|2)[0-9]*',
  '\\Qa.b\\E',
  '(?i)admin',
];
const HEADER = fc.constantFrom('x-user', 'x-debug', 'x-tenant', 'x-client-build', 'x_odd.name');
const BAGGAGE_KEY = fc.constantFrom('tenant', 'Synthetic', 'user.id', 'k6*run');
const VALUE = fc.stringMatching(/^[A-Za-z0-9._~!#$%&'*+^`|-]{1,12}$/);

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));

export function policyArb(name: string, index: number) {
  return fc
    .record({
      port: fc.integer({ min: 1, max: 65535 }),
      external: fc.boolean(),
      stable: fc.constantFrom(...VERSIONS),
      canary: fc.option(
        fc.record({
          version: fc.constantFrom(...VERSIONS),
          weight: fc.integer({ min: 0, max: 100 }),
          sticky: fc.boolean(),
        }),
        { nil: undefined },
      ),
      intercepts: fc.array(
        fc.record({
          header: fc.boolean(),
          kind: fc.constantFrom('exact', 'prefix', 'regex'),
          headerName: HEADER,
          baggageKey: BAGGAGE_KEY,
          value: VALUE,
          regex: fc.constantFrom(...REGEXES),
          toPreview: fc.boolean(),
          version: fc.constantFrom(...VERSIONS),
          requireToken: fc.boolean(),
        }),
        { maxLength: 4 },
      ),
      mirror: fc.option(
        fc.record({
          version: fc.constantFrom(...VERSIONS),
          percent: fc.integer({ min: 0, max: 100 }),
          methods: fc.subarray(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'POST', 'PATCH', 'TRACE'], {
            minLength: 1,
          }),
        }),
        { nil: undefined },
      ),
      limits: fc.uniqueArray(
        fc.record({
          key: fc.constantFrom('clientIp', 'route', 'x-api-key', 'x-user'),
          appliesTo: fc.constantFrom('all', 'stable', 'canary', 'previews'),
          limit: fc.integer({ min: 1, max: 100000 }),
          window: fc.constantFrom('1s', '30s', '1m', '1h'),
          enforce: fc.boolean(),
        }),
        { maxLength: 3, selector: (l) => `${l.key}/${l.appliesTo}` },
      ),
      timeout: fc.option(fc.constantFrom('500ms', '5s', '1m'), { nil: undefined }),
      retries: fc.option(
        fc.record({
          attempts: fc.integer({ min: 0, max: 5 }),
          perTryTimeout: fc.constantFrom('100ms', '1s'),
        }),
        { nil: undefined },
      ),
      domain: fc.boolean(),
      requireToken: fc.boolean(),
      previews: fc.uniqueArray(
        fc.record({
          pr: fc.integer({ min: 1, max: 500 }),
          commit: hex(40),
          ready: fc.constantFrom('file', 'Ready', 'Ready', 'Deploying'),
        }),
        { maxLength: 5, selector: (p) => `${p.pr}/${p.commit.slice(0, 7)}` },
      ),
    })
    .map((g) => {
      const ns = index % 2 === 0 ? 'shop' : 'team-b';
      const canary = g.canary && g.canary.version !== g.stable ? g.canary : undefined;
      const ready = g.previews.filter((p) => p.ready !== 'Deploying');
      const previews = g.previews.map((p, i) => ({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'Preview',
        metadata: {
          name: `${name}-pr-${p.pr}-${p.commit.slice(0, 7)}`,
          namespace: ns,
          creationTimestamp: `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`,
        },
        spec: { policy: name, repository: 'acme/shop', pullRequest: p.pr, commit: p.commit },
        ...(p.ready === 'file' ? {} : { status: { phase: p.ready } }),
      }));
      const spec: Record<string, unknown> = { service: `svc-${name}`, port: g.port, stable: g.stable };
      if (g.external)
        Object.assign(spec, { hosts: [`${name}.example.com`], gateways: ['istio-system/public'] });
      if (canary)
        spec.canary = {
          version: canary.version,
          weight: canary.weight,
          ...(canary.sticky ? { sticky: { maxAge: '1h' } } : {}),
        };
      spec.intercepts = g.intercepts.map((ic, i) => ({
        name: `ic-${i}`,
        match: {
          ...(ic.header ? { header: ic.headerName } : { baggage: ic.baggageKey }),
          [ic.kind]: ic.kind === 'regex' ? ic.regex : ic.value,
        },
        to:
          ic.toPreview && ready.length > 0
            ? { preview: `pr-${ready[i % ready.length]?.pr}` }
            : { version: ic.version },
        ...(ic.requireToken && ic.header ? { requireToken: true } : {}),
      }));
      if (g.mirror && g.mirror.version !== g.stable)
        spec.mirror = {
          to: { version: g.mirror.version },
          percent: g.mirror.percent,
          methods: g.mirror.methods,
        };
      spec.rateLimits = g.limits.map((l, i) => ({
        name: `limit-${i}`,
        key: l.key === 'clientIp' ? { clientIp: {} } : l.key === 'route' ? { route: {} } : { header: l.key },
        limit: l.limit,
        window: l.window,
        appliesTo: l.appliesTo,
        enforce: l.enforce,
      }));
      if (g.timeout) spec.timeout = g.timeout;
      if (g.retries) spec.retries = { ...g.retries, on: ['connect-failure', '503'] };
      spec.previews = {
        repository: 'acme/shop',
        requireToken: g.requireToken,
        ...(g.domain ? { domain: 'preview.example.com', gateway: 'istio-system/previews' } : {}),
      };
      const policy = {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name, namespace: ns },
        spec,
      };
      return { policy, previews, ns, name, generated: g };
    });
}

export const worldArb = fc
  .integer({ min: 1, max: 3 })
  .chain((n) =>
    fc.tuple(...Array.from({ length: n }, (_, i) => policyArb(['alpha', 'beta', 'gamma'][i] as string, i))),
  );

export function load(docs: unknown[]) {
  const { resources, problems } = readResources(
    docs.map((value, i) => ({
      source: { file: 'gen.yaml', document: i + 1 },
      value: structuredClone(value),
    })),
  );
  return { resources, problems };
}

export type GeneratedPolicy = ReturnType<typeof policyArb> extends fc.Arbitrary<infer T> ? T : never;

/** The host a generated policy serves: its external host, or its Service's FQDN. */
export function hostOf(w: GeneratedPolicy): string {
  const hosts = (w.policy.spec as { hosts?: string[] }).hosts;
  return hosts?.[0] ?? `svc-${w.name}.${w.ns}.svc.cluster.local`;
}

/** Requests built from a policy's own match values: none, each intercept, each preview's header and baggage. */
export function requestsFor(w: GeneratedPolicy): Record<string, string>[] {
  const requests: Record<string, string>[] = [{}];
  for (const ic of w.policy.spec.intercepts as { match: Record<string, string> }[]) {
    const v = ic.match.exact ?? ic.match.prefix ?? 'alice';
    requests.push(
      ic.match.header ? { [ic.match.header]: v } : { baggage: `a=1, ${ic.match.baggage}=${v};p=1` },
    );
  }
  for (const p of w.previews)
    requests.push(
      { 'x-switchyard-preview': `pr-${p.spec.pullRequest}` },
      { baggage: `switchyard-preview=pr-${p.spec.pullRequest}-${p.spec.commit.slice(0, 7)}` },
    );
  return requests;
}

/**
 * What a token can stand for in a generated policy: each header intercept that requires one, and
 * each preview when the previews require one (the preview header and `pr-<N>`).
 */
export function tokenClaimsFor(w: GeneratedPolicy): { header: string; value: string }[] {
  const spec = w.policy.spec as {
    intercepts: { match: Record<string, string>; requireToken?: boolean }[];
    previews: { requireToken?: boolean };
  };
  const out = spec.intercepts
    .filter((ic) => ic.requireToken && ic.match.header)
    .map((ic) => ({
      header: ic.match.header as string,
      value: ic.match.exact ?? ic.match.prefix ?? 'alice',
    }));
  if (spec.previews.requireToken)
    for (const p of w.previews)
      out.push({ header: 'x-switchyard-preview', value: `pr-${p.spec.pullRequest}` });
  return out;
}

/** The seed of the sample the mesh property tests send through real Envoy. */
export const MESH_SAMPLE_SEED = 20261129;

/**
 * World `k` of a sample, made to live beside the others in one cluster: its own namespaces and
 * policy names, every policy behind the gateway `istio-system/public` (the in-mesh hosts would need
 * a sidecar per random port), and no rate limits (they run in inbound sidecars:
 * test/mesh-rate-limits.test.ts).
 */
function isolate(world: GeneratedPolicy[], k: number): GeneratedPolicy[] {
  return world.map((w) => {
    const name = `${w.name}${k}`;
    const ns = `${w.ns}-${k}`;
    const spec = { ...(w.policy.spec as Record<string, unknown>) };
    delete spec.rateLimits;
    Object.assign(spec, { hosts: [`${name}.example.com`], gateways: ['istio-system/public'] });
    return {
      ...w,
      name,
      ns,
      policy: { ...w.policy, metadata: { name, namespace: ns }, spec },
      previews: w.previews.map((p) => ({
        ...p,
        metadata: { ...p.metadata, name: p.metadata.name.replace(`${w.name}-`, `${name}-`), namespace: ns },
        spec: { ...p.spec, policy: name },
      })),
    };
  });
}

/** `worlds` random worlds of MESH_SAMPLE_SEED, isolated from one another. */
export function meshSample(worlds: number): GeneratedPolicy[] {
  return fc
    .sample(worldArb, { seed: MESH_SAMPLE_SEED, numRuns: worlds })
    .flatMap((world, k) => isolate(world, k));
}
