/**
 * The benches' policy mix (load-tests/README.md): 1,000 TrafficPolicies in 20 namespaces, each
 * bound to the `istio-system/public` Gateway with five Previews. "typical": every policy has a
 * canary, three intercepts, two rate limits, timeouts, retries and preview URLs; one in five a
 * sticky canary (weighted by hand), another one in five a GET-only mirror. "stress": a mirror and
 * a sticky canary everywhere, each canary a progressive run at one of its five steps (its cookie
 * classes are the weights the run used).
 */
export const POLICIES = 1000;
const PREVIEWS_PER_POLICY = 5;

const STICKY = { cookie: 'switchyard-canary', maxAge: '24h' };
const RUN_STEPS = [5, 10, 25, 50, 75];

/** A progressive run's status at a step (as the controller writes it). */
function runAt(step: number) {
  return {
    version: 'v2',
    phase: 'Progressing',
    step,
    weight: RUN_STEPS[step],
    startedAt: '2026-11-29T00:00:00Z',
    stepStartedAt: '2026-11-29T00:00:00Z',
    failures: 0,
    weightsUsed: RUN_STEPS.slice(0, step + 1),
    message: '',
  };
}

export function benchDocuments(stress: boolean): unknown[] {
  const docs: unknown[] = [];
  for (let i = 0; i < POLICIES; i++) {
    const name = `svc-${i}`;
    docs.push({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name, namespace: `team-${i % 20}` },
      spec: {
        service: name,
        port: 8080,
        hosts: [`${name}.example.com`],
        gateways: ['istio-system/public'],
        stable: 'v1',
        canary: stress
          ? { version: 'v2', steps: RUN_STEPS.map((weight) => ({ weight, pause: '5m' })), sticky: STICKY }
          : { version: 'v2', weight: (i * 7) % 101, ...(i % 5 === 0 ? { sticky: STICKY } : {}) },
        intercepts: [
          { name: 'debug', match: { header: 'x-debug-user', exact: 'alice' }, to: { version: 'v3' } },
          {
            name: 'beta',
            match: { header: 'x-build', regex: '[0-9]+\\.[0-9]+-beta' },
            to: { version: 'v2' },
          },
          { name: 'tenant', match: { baggage: 'tenant', exact: 'acme' }, to: { preview: `pr-${i + 1}` } },
        ],
        ...(stress || i % 5 === 1
          ? { mirror: { to: { version: 'v2' }, percent: 10, methods: ['GET', 'HEAD'] } }
          : {}),
        rateLimits: [
          { name: 'per-key', key: { header: 'x-api-key' }, limit: 100, window: '1m' },
          { name: 'per-ip', key: { clientIp: {} }, limit: 20, window: '1s', appliesTo: 'canary' },
        ],
        timeout: '5s',
        retries: { attempts: 2, perTryTimeout: '1s' },
        previews: {
          repository: 'acme/shop',
          domain: 'preview.example.com',
          gateway: 'istio-system/previews',
        },
      },
      ...(stress ? { status: { canary: runAt(i % RUN_STEPS.length) } } : {}),
    });
    for (let j = 0; j < PREVIEWS_PER_POLICY; j++) {
      const commit = `${(i * 16 + j).toString(16).padStart(7, '0')}${'a'.repeat(33)}`;
      docs.push({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'Preview',
        metadata: {
          name: `${name}-pr-${i}-${commit.slice(0, 7)}`,
          namespace: `team-${i % 20}`,
          creationTimestamp: `2026-11-2${j}T00:00:00Z`,
        },
        spec: { policy: name, repository: 'acme/shop', pullRequest: j < 3 ? i + 1 : i + 10_001, commit },
      });
    }
  }
  return docs;
}
