/**
 * The Gateway API renderer against an independent model of the Gateway API's precedence rules
 * (test/support/gateway-api-eval.ts): a request goes where `explain` says, although the API tries
 * the most specific match first and Switchyard the first one written; what cannot be kept in
 * order is refused by name; the output is deterministic and independent of input order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toYamlDocuments } from '../cli/output.js';
import { compile } from '../core/compiler/compile.js';
import { explainRequest, requestFrom } from '../core/compiler/explain.js';
import type { ApiMatch, HeaderCondition } from '../core/gateway-api/matches.js';
import { keepPlanOrder, type OrderedRule } from '../core/gateway-api/order.js';
import { renderGatewayApi } from '../core/gateway-api/render.js';
import { TOKEN_CLAIM_HEADERS } from '../core/tokens/intercept-token.js';
import { evaluateRoutes, type RouteObject } from './support/gateway-api-eval.js';
import { type GeneratedPolicy, hostOf, load, requestsFor, worldArb } from './support/random-policies.js';

const match = (method: string | undefined, headers: Record<string, HeaderCondition>): ApiMatch => ({
  ...(method ? { method } : {}),
  headers: new Map(Object.entries(headers)),
});
const exact = (value: string): HeaderCondition => ({ type: 'Exact', value });
const regex = (value: string): HeaderCondition => ({ type: 'RegularExpression', value });

function policyDocs(spec: Record<string, unknown>) {
  return [
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'web', namespace: 'shop' },
      spec: { service: 'web', port: 80, stable: 'v1', ...spec },
    },
  ];
}

function render(docs: unknown[], channel: 'standard' | 'experimental' = 'experimental') {
  const { resources, problems } = load(docs);
  expect(problems).toEqual([]);
  const compiled = compile(resources);
  expect(compiled.problems).toEqual([]);
  const rendered = renderGatewayApi(compiled.plan, { channel, tokensVerified: true });
  return { plan: compiled.plan, ...rendered, routes: rendered.objects as unknown as RouteObject[] };
}

describe('Gateway API routes keep the plan order under the API precedence', () => {
  it('an intercept written before a mirror limited to GET keeps its GET requests (the method would outrank it)', () => {
    const { plan, routes } = render(
      policyDocs({
        intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
        mirror: { to: { version: 'v2' }, percent: 10, methods: ['GET'] },
      }),
    );
    const host = 'web.shop.svc.cluster.local';
    for (const method of ['GET', 'POST'])
      for (const headers of [{ 'x-user': 'alice' }, {}] as Record<string, string>[]) {
        const want = explainRequest(plan, requestFrom({ host, method, headers }));
        const got = evaluateRoutes(routes, 'web', { host, method, headers });
        expect(got.rule, `${method} ${JSON.stringify(headers)}`).toBe(want.route);
        expect(got.destinations.map((d) => d.upstream)).toEqual(want.destinations.map((d) => d.upstream));
      }
    // Written in plan order, the GET rule (one method) would outrank the intercept (one header).
    const naive = structuredClone(routes);
    const rules = (naive[0] as RouteObject).spec.rules;
    (rules[0] as { matches: unknown[] }).matches = (rules[0] as { matches: unknown[] }).matches.slice(0, 1);
    const host2 = { host, method: 'GET', headers: { 'x-user': 'alice' } };
    expect(evaluateRoutes(naive, 'web', host2).rule).not.toBe('intercept-alice');
    expect(evaluateRoutes(routes, 'web', host2).rule).toBe('intercept-alice');
  });

  it('joins are added until no later, more specific match can take an earlier rule’s requests', () => {
    const rules: OrderedRule[] = [
      { name: 'a', action: 'A', matches: [match(undefined, { 'x-user': exact('alice') })] },
      {
        name: 'b',
        action: 'B',
        matches: [match(undefined, { 'x-user': regex('a.*'), 'x-beta': exact('1') })],
      },
      { name: 'c', action: 'C', matches: [match('GET', { 'x-beta': exact('1'), 'x-tenant': exact('t') })] },
      { name: 'd', action: 'D', matches: [] },
    ];
    const { rules: out, conflicts } = keepPlanOrder(rules, true);
    expect(conflicts).toEqual([]);
    const keys = (r: OrderedRule) =>
      r.matches.map(
        (m) => `${m.method ?? '*'} ${[...m.headers].map(([n, c]) => `${n}=${c.value}`).join(' ')}`,
      );
    // a ∧ b (alice satisfies a.*), a ∧ c and (a ∧ b) ∧ c; b ∧ c; d keeps no match (every request).
    expect(keys(out[0] as OrderedRule)).toEqual([
      '* x-user=alice',
      '* x-user=alice x-beta=1',
      'GET x-user=alice x-beta=1 x-tenant=t',
    ]);
    expect(keys(out[1] as OrderedRule)).toEqual([
      '* x-user=a.* x-beta=1',
      'GET x-user=a.* x-beta=1 x-tenant=t',
    ]);
    expect((out[3] as OrderedRule).matches).toEqual([]);
  });

  it('two different patterns on one header cannot be joined: the later, more specific rule is refused by name', () => {
    const { conflicts } = keepPlanOrder(
      [
        { name: 'first', action: 'A', matches: [match(undefined, { baggage: regex('.*a=1.*') })] },
        { name: 'second', action: 'B', matches: [match('GET', { baggage: regex('.*b=2.*') })] },
      ],
      true,
    );
    expect(conflicts).toEqual([{ earlier: 'first', later: 'second' }]);
    // Disjoint conditions (two exact values of one header) need no join and are no conflict.
    const disjoint = keepPlanOrder(
      [
        { name: 'first', action: 'A', matches: [match(undefined, { 'x-user': exact('alice') })] },
        { name: 'second', action: 'B', matches: [match('GET', { 'x-user': exact('bob') })] },
      ],
      true,
    );
    expect(disjoint.conflicts).toEqual([]);
    expect(disjoint.rules[0]?.matches).toHaveLength(1);
  });

  it('a GRPCRoute ranks by headers only: a method condition holds for all of gRPC (POST) or for none', () => {
    const { plan, objects, routes } = render(
      policyDocs({
        upstreamProtocol: 'http2',
        intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
        mirror: { to: { version: 'v2' }, percent: 10, methods: ['GET'] },
      }),
    );
    expect(objects[0]?.kind).toBe('GRPCRoute');
    // The per-version Services tell the implementation to speak HTTP/2 to the pods (GEP-1911).
    const services = objects.filter((o) => o.kind === 'Service');
    expect(services.length).toBeGreaterThan(0);
    for (const svc of services)
      expect((svc.spec.ports as { appProtocol?: string }[]).map((p) => p.appProtocol)).toEqual([
        'kubernetes.io/h2c',
      ]);
    const rules = (routes[0] as RouteObject).spec.rules;
    // The GET-only mirror rule can never match gRPC: it is not written (an empty match list would match all).
    expect(rules.map((r) => r.name)).toEqual(
      plan.policies[0]?.routes.filter((r) => !r.name.includes('mirror')).map((r) => r.name),
    );
    const got = evaluateRoutes(routes, 'web', {
      host: 'web.shop.svc.cluster.local',
      method: 'POST',
      headers: { 'x-user': 'alice' },
    });
    expect(got.destinations.map((d) => d.upstream)).toEqual(['web/v3']);
  });
});

interface ModelRequest {
  /** What `explain` is given: the headers, and the claims of a token the gateway accepted for this policy. */
  explain: { headers: Record<string, string>; claims?: Record<string, string> };
  /** What the Gateway API route sees: the headers, with the claim headers a Gateway's verifier wrote. */
  route: Record<string, string>;
}

/**
 * The requests of requestsFor, and for each intercept and preview a token stands for, two more:
 * a token for this policy (its claims, and the claim headers the verifier writes from them) and one
 * for another policy (no claims for this one; its `aud` header names the other).
 */
function modelRequests(w: GeneratedPolicy): ModelRequest[] {
  const out: ModelRequest[] = requestsFor(w).map((headers) => ({ explain: { headers }, route: headers }));
  const audience = `${w.ns}/${w.name}`;
  const claimed: [string, string][] = [];
  for (const ic of w.policy.spec.intercepts as { match: Record<string, string> }[])
    if (ic.match.header) claimed.push([ic.match.header, ic.match.exact ?? ic.match.prefix ?? 'alice']);
  for (const p of w.previews) claimed.push(['x-switchyard-preview', `pr-${p.spec.pullRequest}`]);
  for (const [header, value] of claimed) {
    const claimHeaders = (aud: string) => ({
      [TOKEN_CLAIM_HEADERS.aud]: aud,
      [TOKEN_CLAIM_HEADERS.intercept_header]: header,
      [TOKEN_CLAIM_HEADERS.intercept_value]: value,
    });
    out.push(
      { explain: { headers: {}, claims: { [header]: value } }, route: claimHeaders(audience) },
      { explain: { headers: {} }, route: claimHeaders(`${w.ns}/someone-else`) },
    );
  }
  return out;
}

/** The parent a generated policy's main route attaches to: its Gateway, or its Service (GAMMA). */
function parentOf(w: GeneratedPolicy): string {
  return (w.policy.spec as { gateways?: string[] }).gateways ? 'public' : `svc-${w.name}`;
}

describe('property: random valid policies through the Gateway API renderer', () => {
  it('explain and the Gateway API precedence model agree on every request built from the policies (400 cases)', () => {
    let compared = 0;
    let refused = 0;
    fc.assert(
      fc.property(worldArb, (world) => {
        const docs = world.flatMap((w) => [w.policy, ...w.previews]);
        const { plan, routes, problems } = render(docs);
        // Only what this backend leaves out by design: tokens in GAMMA, rate limits, order conflicts.
        for (const p of problems)
          expect(p.code === 'SY_GATEWAY_API_UNSUPPORTED' || p.code === 'SY_ROUTE_ORDER').toBe(true);
        // Each such problem names the route left out first.
        const leftOut = new Set(problems.map((p) => /: route (\S+) /.exec(p.message)?.[1]));
        for (const w of world) {
          const host = hostOf(w);
          for (const request of modelRequests(w))
            for (const method of ['GET', 'POST', 'DELETE']) {
              const headers = request.route;
              const want = explainRequest(plan, requestFrom({ host, method, ...request.explain }));
              // A request whose route was left out (and reported) goes elsewhere: not compared.
              if (leftOut.has(want.route)) {
                refused++;
                continue;
              }
              const got = evaluateRoutes(routes, parentOf(w), { host, method, headers });
              expect(got.rule, `${w.name} ${method} ${JSON.stringify(headers)}`).toBe(want.route);
              expect(got.destinations.map((d) => [d.upstream, d.weight, d.setCookie])).toEqual(
                want.destinations.map((d) => [d.upstream, d.weight, d.setCookie]),
              );
              compared++;
            }
        }
      }),
      { numRuns: 400, seed: 20261206 },
    );
    // Left out: routes past the limits of one route (many previews, intercepts and methods in one
    // policy), each reported. With this seed 29,169 requests are compared (1,293 of them taken by a
    // route that requires a token) and 4,785 not.
    expect(compared).toBeGreaterThan(2 * refused);
  }, 120_000);

  it('the output is deterministic and does not depend on the order of the input documents (200 cases)', () => {
    fc.assert(
      fc.property(worldArb, fc.integer(), (world, seed) => {
        const docs = world.flatMap((w) => [w.policy, ...w.previews]);
        const once = render(docs);
        const shuffled = [...docs].sort(
          (a, b) =>
            ((JSON.stringify(a).length * 31 + seed) % 97) - ((JSON.stringify(b).length * 31 + seed) % 97),
        );
        expect(toYamlDocuments(render(shuffled).objects)).toBe(toYamlDocuments(once.objects));
      }),
      { numRuns: 200 },
    );
  });

  it('hosts other than the Service’s own, without a Gateway: GAMMA cannot serve them, and says so', () => {
    const { objects, problems } = render(policyDocs({ hosts: ['web.example.com'] }));
    expect((objects[0]?.spec.parentRefs as { kind: string }[])[0]?.kind).toBe('Service');
    expect(problems.map((p) => p.path)).toEqual(['spec.hosts']);
    expect(problems[0]?.message).toMatch(/web\.example\.com are not served without a Gateway/);
    // The Service's own names are what GAMMA serves: no problem.
    expect(render(policyDocs({ hosts: ['web', 'web.shop.svc.cluster.local'] })).problems).toEqual([]);
  });

  it('a route that requires a token is written only where a Gateway verifies tokens; elsewhere it is left out, and says why', () => {
    const docs = policyDocs({
      hosts: ['web.example.com'],
      gateways: ['istio-system/public', 'mesh'],
      intercepts: [
        {
          name: 'debug',
          match: { header: 'x-debug', exact: 'alice' },
          to: { version: 'v2' },
          requireToken: true,
        },
      ],
    });
    const rules = (o: { spec: Record<string, unknown> } | undefined) =>
      (o?.spec.rules as { name: string }[]).map((r) => r.name);
    const { plan } = render(docs);
    const verified = renderGatewayApi(plan, { channel: 'experimental', tokensVerified: true });
    // The Gateway's route has it; the Service's (GAMMA) cannot: the client's own proxy verifies nothing.
    expect(
      verified.objects.filter((o) => o.kind === 'HTTPRoute').map((o) => [o.metadata.name, rules(o)]),
    ).toEqual([
      ['web', ['intercept-debug', 'split']],
      ['web-mesh', ['split']],
    ]);
    expect(verified.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(
        /route intercept-debug requires an intercept token, and HTTPRoute web-mesh is attached to the Service/,
      ),
    ]);
    // No verifier (no keys, or an implementation without Istio's token objects): left out everywhere.
    const unverified = renderGatewayApi(plan, { channel: 'experimental' });
    expect(unverified.objects.filter((o) => o.kind === 'HTTPRoute').map((o) => rules(o))).toEqual([
      ['split'],
      ['split'],
    ]);
    expect(unverified.problems[0]?.message).toMatch(
      /not every Gateway of HTTPRoute web verifies intercept tokens/,
    );
    // Envoy Gateway: only the Gateways named verify tokens; a route on another keeps its token routes out.
    const named = (gateway: string) =>
      renderGatewayApi(plan, {
        channel: 'experimental',
        tokensVerified: true,
        tokenGateways: new Set([gateway]),
      });
    expect(rules(named('istio-system/public').objects[0] as never)).toEqual(['intercept-debug', 'split']);
    expect(rules(named('istio-system/other').objects[0] as never)).toEqual(['split']);
  });

  it('rate limits become Envoy Gateway BackendTrafficPolicies where its CRDs are; what it cannot count is said, never dropped silently', () => {
    const docs = [
      ...policyDocs({
        hosts: ['web.example.com'],
        gateways: ['istio-system/public'],
        previews: { repository: 'acme/web', domain: 'preview.example.com' },
        rateLimits: [
          { name: 'per-key', key: { header: 'x-api-key' }, limit: 100, window: '1m' },
          { name: 'per-ip', key: { clientIp: {} }, limit: 5, window: '1s', appliesTo: 'previews' },
          { name: 'odd-window', key: { route: {} }, limit: 10, window: '30s' },
          { name: 'canary-only', key: { route: {} }, limit: 10, window: '1s', appliesTo: 'canary' },
          { name: 'dry-run', key: { header: 'x-tenant' }, limit: 10, window: '1s', enforce: false },
        ],
      }),
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'Preview',
        metadata: { name: 'web-pr-7-abcdef0', namespace: 'shop' },
        spec: { policy: 'web', repository: 'acme/web', pullRequest: 7, commit: 'abcdef0' },
      },
    ];
    const { plan } = render(docs.slice(0, 1));
    const withPreview = compile(load(docs).resources).plan;
    expect(plan.policies).toHaveLength(1);
    const out = renderGatewayApi(withPreview, { channel: 'experimental', envoyGatewayPolicies: true });
    const policies = out.objects.filter((o) => o.kind === 'BackendTrafficPolicy');
    const summary = policies.map((o) => ({
      name: o.metadata.name,
      targets: (o.spec.targetRefs as { name: string; sectionName?: string }[]).map(
        (t) => `${t.name}${t.sectionName ? `#${t.sectionName}` : ''}`,
      ),
      rules: (o.spec.rateLimit as { local: { rules: unknown[] } }).local.rules,
    }));
    const perKey = {
      clientSelectors: [{ headers: [{ name: 'x-api-key', type: 'Distinct' }] }],
      limit: { requests: 100, unit: 'Minute' },
    };
    const perIp = (value: string) => ({
      clientSelectors: [{ sourceCIDR: { type: 'Distinct', value } }],
      limit: { requests: 5, unit: 'Second' },
    });
    expect(summary).toEqual([
      // Policy-wide: the main route (its preview rules take the previews' policy, which also holds it).
      { name: 'web-ratelimit', targets: ['web'], rules: [perKey] },
      {
        name: 'web-ratelimit-previews',
        targets: [
          'web#preview-pr-7-abcdef0',
          'web#preview-pr-7',
          'web-preview-host-pr-7-abcdef0',
          'web-preview-host-pr-7',
        ],
        rules: [perKey, perIp('0.0.0.0/0'), perIp('::/0')],
      },
    ]);
    expect(out.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(
        /rate limit odd-window: Envoy Gateway counts per second, minute, hour, day or week, not per 30 s/,
      ),
      expect.stringMatching(/rate limit canary-only: appliesTo canary: .* share the split rule/),
      expect.stringMatching(/rate limit dry-run: enforce: false: .*global rate limits only/),
    ]);
    // Without Envoy Gateway's CRDs, nothing can carry them: one problem, no object.
    const plain = renderGatewayApi(withPreview, { channel: 'experimental' });
    expect(plain.objects.some((o) => o.kind === 'BackendTrafficPolicy')).toBe(false);
    expect(plain.problems.map((p) => p.path)).toEqual(['spec.rateLimits']);
  });

  it('the standard channel gets no retries, and says so; the experimental channel gets them', () => {
    const docs = policyDocs({ timeout: '5s', retries: { attempts: 2, perTryTimeout: '1s', on: ['5xx'] } });
    const standard = render(docs, 'standard');
    const rule = (o: { spec: Record<string, unknown> }) => (o.spec.rules as Record<string, unknown>[])[0];
    expect(rule(standard.objects[0] as never)).toMatchObject({ timeouts: { request: '5s' } });
    expect(rule(standard.objects[0] as never)).not.toHaveProperty('retry');
    expect(standard.problems.map((p) => p.code)).toEqual(['SY_GATEWAY_API_UNSUPPORTED']);
    expect(standard.problems[0]?.message).toMatch(/experimental channel/);
    const experimental = render(docs, 'experimental');
    expect(rule(experimental.objects[0] as never)).toMatchObject({
      timeouts: { request: '5s', backendRequest: '1s' },
      retry: { attempts: 2, codes: [500, 501, 502, 503, 504] },
    });
    expect(experimental.problems).toEqual([]);
  });
});
