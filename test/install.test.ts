/**
 * `switchyard install`: one manifest per mode that a real API server accepts (server-side apply,
 * dryRun=All), with the RBAC each mode needs and nothing else, probes, requests and budgets; and
 * deploy/install/crds.yaml in step with `switchyard crds`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi, loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { backendFor, CONTROLLER_MODES } from '../controllers/backends/index.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { testTokenKeys } from './support/tokens.js';

const shared = await sharedEnvtest({ istio: false });
const INSTALL = join(import.meta.dirname, '..', 'deploy', 'install');

type Obj = KubernetesObject & {
  spec?: {
    template?: {
      spec?: {
        serviceAccountName?: string;
        terminationGracePeriodSeconds?: number;
        containers: {
          image: string;
          args: string[];
          env?: { name: string; valueFrom?: unknown }[];
          readinessProbe?: unknown;
          livenessProbe?: unknown;
          resources?: { requests?: Record<string, string> };
          lifecycle?: { preStop?: unknown };
        }[];
      };
    };
  };
};

async function manifest(...args: string[]): Promise<Obj[]> {
  const r = await cli('install', ...args);
  expect(r.code).toBe(0);
  return loadAllYaml(r.stdout) as Obj[];
}

describe('switchyard install', () => {
  it('keeps deploy/install/crds.yaml in step with `switchyard crds`', async () => {
    const file = readFileSync(join(INSTALL, 'crds.yaml'), 'utf8').replace(/^#.*\n/, '');
    expect(file).toBe((await cli('crds')).stdout);
  });

  it('names the image of package.json’s version (the one place it is set)', async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    const images = (await manifest('--mode', 'gateway'))
      .filter((o) => o.kind === 'Deployment')
      .map((o) => o.spec?.template?.spec?.containers[0]?.image);
    expect(images).toEqual([
      `ghcr.io/switchyard-dev/switchyard:${version}`,
      `ghcr.io/switchyard-dev/switchyard:${version}`,
    ]);
  });

  it('mesh mode: CRDs, RBAC with the Istio role, the controller with probes, requests and a PDB; no gateway', async () => {
    const objects = await manifest('--mode', 'istio', '--image', 'registry.example/switchyard:1.2.3');
    const kinds = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'CustomResourceDefinition/trafficpolicies.switchyard.dev',
        'CustomResourceDefinition/previews.switchyard.dev',
        'ServiceAccount/switchyard',
        'ClusterRole/switchyard-controller',
        'ClusterRole/switchyard-controller-istio',
        'Role/switchyard-leader-election',
        'Deployment/switchyard-controller',
        'PodDisruptionBudget/switchyard-controller',
      ]),
    );
    expect(kinds.some((k) => k.includes('gateway'))).toBe(false);
    const controller = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec;
    expect(controller?.serviceAccountName).toBe('switchyard');
    expect(controller?.containers[0]).toMatchObject({
      image: 'registry.example/switchyard:1.2.3',
      args: [
        'controller',
        '--mode',
        'istio',
        '--port',
        '8081',
        '--workers',
        '8',
        '--log-level',
        'info',
        '--mesh-metrics',
        'istio',
        '--istio-root-namespace',
        'istio-system',
      ],
      readinessProbe: expect.anything(),
      livenessProbe: expect.anything(),
      resources: { requests: { cpu: expect.any(String), memory: expect.any(String) } },
    });
  });

  it('gateway mode: the gateway Deployment, Service and PDB, and no Istio permission', async () => {
    const objects = await manifest('--mode', 'gateway', '--redis-secret', 'switchyard-redis');
    const kinds = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'ServiceAccount/switchyard-gateway',
        'ClusterRole/switchyard-gateway',
        'Deployment/switchyard-gateway',
        'Service/switchyard-gateway',
        'Service/switchyard-gateway-admin',
        'Service/switchyard-controller',
        'PodDisruptionBudget/switchyard-gateway',
        'NetworkPolicy/switchyard-gateway',
      ]),
    );
    expect(JSON.stringify(objects)).not.toContain('networking.istio.io');
    const deployments = objects.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.spec?.template?.spec?.containers[0]?.args)).toEqual([
      ['controller', '--mode', 'gateway', '--port', '8081', '--workers', '8', '--log-level', 'info'],
      [
        'gateway',
        '--kube',
        '--port',
        '8080',
        '--admin-port',
        '9901',
        '--admin-host',
        '0.0.0.0',
        '--drain-timeout',
        '20s',
        '--workers',
        '2',
      ],
    ]);
    // Endpoints go before the listener closes; the drain ends inside the grace period.
    const pod = deployments[1]?.spec?.template?.spec;
    expect(pod?.containers[0]?.lifecycle?.preStop).toEqual({ sleep: { seconds: 5 } });
    expect(pod?.terminationGracePeriodSeconds).toBe(30);
    // The admin port only for namespaces labelled for metrics.
    const policy = objects.find((o) => o.kind === 'NetworkPolicy') as unknown as {
      spec: { ingress: { ports: { port: string }[]; from?: unknown[] }[] };
    };
    expect(JSON.parse(JSON.stringify(policy.spec.ingress))).toEqual([
      { ports: [{ port: 'http' }] },
      {
        ports: [{ port: 'admin' }],
        _from: [{ namespaceSelector: { matchLabels: { 'switchyard.dev/metrics': 'allowed' } } }],
      },
    ]);
    // The Redis URL comes from a Secret, not from args anyone can read with `ps`.
    expect(deployments[1]?.spec?.template?.spec?.containers[0]?.env).toEqual([
      { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'switchyard-redis', key: 'url' } } },
    ]);
  });

  it('gateway-api mode: the controller alone, with the route and CRD-reading roles and, on Istio, the token objects; no gateway', async () => {
    const objects = await manifest('--mode', 'gateway-api');
    const kinds = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'ClusterRole/switchyard-controller-gateway-api',
        'ClusterRole/switchyard-controller-gateway-api-crds',
        'Deployment/switchyard-controller',
      ]),
    );
    expect(kinds.filter((k) => k.includes('switchyard-gateway'))).toEqual([]);
    // Istio is touched only for intercept tokens: the two objects of that one name in its root namespace.
    const istio = objects.filter((o) => JSON.stringify(o).includes('istio.io'));
    expect(istio.map((o) => `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`)).toEqual([
      'Role istio-system/switchyard-controller-gateway-api-tokens',
    ]);
    expect(JSON.stringify(istio[0])).toMatch(/"resourceNames":\["switchyard-intercept-tokens"\]/);
    const deployments = objects.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.spec?.template?.spec?.containers[0]?.args)).toEqual([
      [
        'controller',
        '--mode',
        'gateway-api',
        '--port',
        '8081',
        '--workers',
        '8',
        '--log-level',
        'info',
        '--mesh-metrics',
        'istio',
        '--istio-root-namespace',
        'istio-system',
      ],
    ]);
    // Namespaced: the CRD reader stays a ClusterRole (a Role cannot grant a cluster-scoped kind).
    const scoped = await manifest('--mode', 'gateway-api', '-n', 'shop');
    expect(scoped.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata?.name)).toEqual([
      'switchyard-controller-gateway-api-crds',
    ]);
    // With keys, the controller gets them (it keeps the gateway's token objects).
    const keys = await testTokenKeys();
    const jwks = join(tempFiles({ 'jwks.json': JSON.stringify(keys.jwks) }), 'jwks.json');
    const withKeys = await manifest('--mode', 'gateway-api', '--token-jwks', jwks);
    const controller = withKeys.find((o) => o.kind === 'Deployment');
    expect(controller?.spec?.template?.spec?.containers[0]?.args).toEqual(
      expect.arrayContaining(['--token-jwks', '/etc/switchyard/tokens/jwks.json']),
    );
    expect(withKeys.map((o) => `${o.kind}/${o.metadata?.name}`)).toContain('ConfigMap/switchyard-token-jwks');
  });

  it('-n: both parts watch only those namespaces, with Roles there and no ClusterRole but the Namespaces reader', async () => {
    const rbac = (objects: Obj[]) =>
      objects
        .filter((o) => o.kind?.includes('Role'))
        .map((o) => `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`)
        .sort();
    const gateway = await manifest('--mode', 'gateway', '-n', 'shop', '--namespace', 'web');
    expect(rbac(gateway)).toEqual(
      ['switchyard-controller', 'switchyard-controller-gateway', 'switchyard-gateway']
        .flatMap((name) => [
          `Role shop/${name}`,
          `Role web/${name}`,
          `RoleBinding shop/${name}`,
          `RoleBinding web/${name}`,
        ])
        .concat([
          'Role switchyard-system/switchyard-leader-election',
          'RoleBinding switchyard-system/switchyard-leader-election',
        ])
        .sort(),
    );
    for (const d of gateway.filter((o) => o.kind === 'Deployment')) {
      const args = d.spec?.template?.spec?.containers[0]?.args ?? [];
      expect(args.filter((_, i) => args[i - 1] === '--namespace')).toEqual(['shop', 'web']);
    }
    const mesh = await manifest('--mode', 'istio', '-n', 'shop');
    expect(rbac(mesh).filter((k) => k.startsWith('Cluster'))).toEqual([
      'ClusterRole /switchyard-controller-namespaces',
      'ClusterRoleBinding /switchyard-controller-namespaces',
    ]);
    expect(rbac(mesh)).toContain('Role shop/switchyard-controller-istio');
  });

  it('--token-jwks: the public keys as a ConfigMap, mounted into the part that verifies tokens', async () => {
    const keys = await testTokenKeys();
    const file = join(tempFiles({ 'jwks.json': JSON.stringify(keys.jwks) }), 'jwks.json');
    for (const [mode, verifier] of [
      ['istio', 'switchyard-controller'],
      ['gateway', 'switchyard-gateway'],
    ] as const) {
      const objects = await manifest('--mode', mode, '--token-jwks', file);
      const map = objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
      expect(JSON.parse(map.data['jwks.json'] as string)).toEqual(keys.jwks);
      for (const d of objects.filter((o) => o.kind === 'Deployment')) {
        const pod = d.spec?.template?.spec as unknown as {
          containers: { args: string[]; volumeMounts?: { mountPath: string }[] }[];
          volumes?: { configMap?: { name: string } }[];
        };
        const verifies = d.metadata?.name === verifier;
        expect(pod.containers[0]?.args.includes('--token-jwks'), d.metadata?.name).toBe(verifies);
        if (!verifies) continue;
        const at = pod.containers[0]?.args.indexOf('--token-jwks') as number;
        const path = pod.containers[0]?.args[at + 1] as string;
        expect(pod.containers[0]?.volumeMounts?.some((m) => path.startsWith(`${m.mountPath}/`))).toBe(true);
        expect(pod.volumes?.some((v) => v.configMap?.name === 'switchyard-token-jwks')).toBe(true);
      }
    }
    const leaked = join(
      tempFiles({ 'jwks.json': JSON.stringify({ keys: [{ ...keys.jwks.keys[0], d: 'x' }] }) }),
      'jwks.json',
    );
    const refused = await cli('install', '--token-jwks', leaked);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/keys\[0\]\.d: this is a private key/);
  });

  describe.skipIf(!shared)('on a real API server', () => {
    it.each(CONTROLLER_MODES)('the %s manifest is accepted (server-side apply, dryRun=All)', async (mode) => {
      const env = shared as Envtest;
      await createNamespace(adminKube(env), 'switchyard-system');
      // Mesh mode's token Role lives in Istio's root namespace, which an Istio install has.
      await createNamespace(adminKube(env), 'istio-system');
      const kc = new KubeConfig();
      kc.loadFromString(env.adminKubeconfig);
      const api = KubernetesObjectApi.makeApiClient(kc);
      const keys = await testTokenKeys();
      const jwks = join(tempFiles({ 'jwks.json': JSON.stringify(keys.jwks) }), 'jwks.json');
      // A mode that carries no intercept tokens refuses keys (below).
      const tokens = backendFor(mode).tokensCheckedBy === 'none' ? [] : ['--token-jwks', jwks];
      const objects = await manifest('--mode', mode, ...tokens);
      for (const o of objects) {
        const applied = await api.patch(
          o,
          undefined,
          'All',
          'switchyard-install-test',
          true,
          'application/apply-patch+yaml' as never,
        );
        expect(applied.kind).toBe(o.kind);
      }
    });
  });
});
