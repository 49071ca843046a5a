/**
 * The Helm chart (deploy/helm/switchyard), with a real helm (built from its Go module by
 * test/helm/build.sh): `helm lint` passes; what `helm template` renders with the default values
 * and in gateway mode is accepted by a real API server (server-side apply, dryRun=All); its RBAC
 * is the RBAC of `switchyard install`, which test/rbac.test.ts checks against the calls a
 * controller makes; its CRDs are `switchyard crds`; its version is package.json's; bad values fail
 * with a message that names them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi, loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { installManifests } from '../cli/install.js';
import { CONTROLLER_MODES } from '../controllers/backends/index.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, sharedEnvtest, testBinaries } from './support/envtest.js';

const ROOT = join(import.meta.dirname, '..');
const CHART = join(ROOT, 'deploy', 'helm', 'switchyard');
const NAMESPACE = 'switchyard-system';

function helmBinary(): string | undefined {
  const dir = testBinaries('HELM_ASSETS', ['helm'], 'test/helm/build.sh');
  const missing =
    'skipping the Helm chart tests: set HELM_ASSETS to a folder with helm, or install Go so test/helm/build.sh can build it';
  if (!dir && process.env.CI) throw new Error(`CI=true, but ${missing}`);
  if (!dir) console.warn(missing);
  return dir && join(dir, 'helm');
}

const helm = helmBinary();
const shared = helm ? await sharedEnvtest({ istio: false }) : undefined;

type Obj = KubernetesObject & {
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  spec?: { template?: { spec?: { containers: { image: string; args: string[] }[] } } };
};

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(helm as string, args, {
    encoding: 'utf8',
    env: { ...process.env, HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with these values (as a values file). */
function template(values: object = {}): Obj[] {
  const file = join(tempFiles({ 'values.json': JSON.stringify(values) }), 'values.json');
  const r = run('template', 'switchyard', CHART, '--namespace', NAMESPACE, '-f', file);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return (loadAllYaml(r.stdout) as (Obj | null)[]).filter((o): o is Obj => o !== null);
}

/**
 * `helm template` as plain data, read as `switchyard install` reads its manifests (client-node's
 * loadAllYaml turns known kinds into its models, e.g. a NetworkPolicy's `from` into `_from`).
 */
function templateAsData(values: object): Obj[] {
  const file = join(tempFiles({ 'values.json': JSON.stringify(values) }), 'values.json');
  const r = run('template', 'switchyard', CHART, '--namespace', NAMESPACE, '-f', file);
  expect(r.code).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** Every Role and ClusterRole by kind, namespace and name, with its rules. */
function rbacOf(objects: Obj[]): Record<string, Obj['rules']> {
  return Object.fromEntries(
    objects
      .filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
      .map((o) => [`${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`, o.rules]),
  );
}

/** Who each binding gives which role to. */
function bindingsOf(objects: Obj[]): string[] {
  return objects
    .filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')
    .map((o) => {
      const b = o as Obj & { roleRef: { name: string }; subjects: { name: string; namespace: string }[] };
      return `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}: ${b.roleRef.name} -> ${b.subjects.map((s) => `${s.namespace}/${s.name}`).join(',')}`;
    })
    .sort();
}

describe.skipIf(!helm)('the Helm chart', () => {
  it('passes helm lint, in every mode', () => {
    for (const mode of CONTROLLER_MODES) {
      const r = run('lint', CHART, '--set', `mode=${mode}`, '--strict');
      expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(r.code).toBe(0);
    }
  });

  /** The same settings, as the chart's values and as `switchyard install`'s options. */
  const SETTINGS = [
    { mode: 'istio', namespaces: [] },
    { mode: 'gateway', namespaces: [] },
    { mode: 'istio', namespaces: ['shop', 'web'] },
    { mode: 'gateway', namespaces: ['shop', 'web'] },
    { mode: 'gateway-api', namespaces: [] },
    { mode: 'gateway-api', namespaces: ['shop', 'web'] },
  ] as const;
  const chartValues = (s: (typeof SETTINGS)[number]) => ({
    mode: s.mode,
    controller: { namespaces: s.namespaces },
  });
  const installOptions = (s: (typeof SETTINGS)[number]) => ({ mode: s.mode, namespace: [...s.namespaces] });

  it.each(
    SETTINGS,
  )('renders the RBAC `switchyard install` has in $mode mode, namespaces $namespaces', (s) => {
    const chart = template(chartValues(s));
    const install = installManifests(installOptions(s)) as Obj[];
    expect(rbacOf(chart)).toEqual(rbacOf(install));
    expect(bindingsOf(chart)).toEqual(bindingsOf(install));
    // The same parts: the gateway only in gateway mode.
    const deployments = (objects: Obj[]) =>
      objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata?.name);
    expect(deployments(chart)).toEqual(deployments(install));
    // The controller runs in the mode asked for.
    const controller = chart.find(
      (o) => o.kind === 'Deployment' && o.metadata?.name === 'switchyard-controller',
    );
    const args = controller?.spec?.template?.spec?.containers[0]?.args ?? [];
    expect(args[args.indexOf('--mode') + 1]).toBe(s.mode);
  });

  it.each([
    'istio',
    'gateway',
  ] as const)('given namespaces, grants nothing cluster-wide but the reading of Namespaces (%s mode)', (mode) => {
    const objects = template({ mode, controller: { namespaces: ['shop', 'web'] } });
    const clusterWide = Object.entries(rbacOf(objects)).filter(([key]) => key.startsWith('ClusterRole'));
    expect(clusterWide).toEqual(
      mode === 'istio'
        ? [
            [
              'ClusterRole /switchyard-controller-namespaces',
              [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] }],
            ],
          ]
        : [],
    );
    // Each of the controller's and the gateway's Roles is in both namespaces, and both watch only them.
    const roles = (ns: string) =>
      Object.keys(rbacOf(objects))
        .filter((k) => k.startsWith(`Role ${ns}/`))
        .map((k) => k.slice(k.indexOf('/') + 1));
    expect(roles('web')).toEqual(roles('shop'));
    expect(roles('shop')).toContain('switchyard-controller');
    for (const o of objects.filter((x) => x.kind === 'Deployment')) {
      const args = o.spec?.template?.spec?.containers[0]?.args ?? [];
      expect(args.filter((_, i) => args[i - 1] === '--namespace')).toEqual(['shop', 'web']);
    }
  });

  it.each(
    SETTINGS,
  )('renders the same objects as `switchyard install` in $mode mode, namespaces $namespaces, less Helm’s labels', (s) => {
    // What differs by design: Helm's release labels and selectors, and the CRDs and Namespace
    // (Helm installs the chart's crds/ and --create-namespace; `install` prints them).
    const comparable = (objects: Obj[]) =>
      Object.fromEntries(
        objects
          .filter((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace')
          .map((o) => [
            `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`,
            withoutReleaseLabels(o),
          ]),
      );
    expect(comparable(templateAsData(chartValues(s)))).toEqual(
      comparable(installManifests(installOptions(s)) as Obj[]),
    );
  });

  it('carries package.json’s version, and `switchyard crds` as its CRDs', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
      version: string;
      appVersion: string;
    };
    expect([chart.version, chart.appVersion]).toEqual([pkg.version, pkg.version]);
    const images = template()
      .filter((o) => o.kind === 'Deployment')
      .map((o) => o.spec?.template?.spec?.containers[0]?.image);
    expect(images).toEqual([`ghcr.io/switchyard-dev/switchyard:${pkg.version}`]);
    expect((await cli('--version')).stdout.trim()).toBe(pkg.version);
    expect(readFileSync(join(CHART, 'crds', 'switchyard.yaml'), 'utf8')).toBe((await cli('crds')).stdout);
  });

  it('gateway.tls mounts the Secret and has the gateway speak TLS with it', () => {
    const gateway = template({ mode: 'gateway', gateway: { tls: { existingSecret: 'gateway-tls' } } }).find(
      (o) => o.kind === 'Deployment' && o.metadata?.name?.includes('gateway'),
    ) as Obj & {
      spec: { template: { spec: { volumes: { name: string; secret?: { secretName: string } }[] } } };
    };
    const args = gateway.spec.template.spec.containers[0]?.args ?? [];
    expect(args.join(' ')).toContain(
      '--tls-cert /etc/switchyard/tls/tls.crt --tls-key /etc/switchyard/tls/tls.key',
    );
    expect(gateway.spec.template.spec.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'gateway-tls' },
    });
    const plain = template({ mode: 'gateway' }).find(
      (o) => o.kind === 'Deployment' && o.metadata?.name?.includes('gateway'),
    );
    expect(plain?.spec?.template?.spec?.containers[0]?.args).not.toContain('--tls-cert');
  });

  it('passes a site’s pod settings through (env, annotations, volumes) and mounts a temp dir in each pod', () => {
    const site = {
      podAnnotations: { 'example.com/team': 'platform' },
      extraEnv: [{ name: 'KUBERNETES_SERVICE_HOST', value: '10.0.0.1' }],
      extraVolumes: [{ name: 'ca', configMap: { name: 'site-ca' } }],
      extraVolumeMounts: [{ name: 'ca', mountPath: '/etc/site-ca', readOnly: true }],
    };
    type Pod = {
      metadata: { annotations?: Record<string, string> };
      spec: {
        containers: { env?: unknown[]; volumeMounts?: unknown[] }[];
        volumes?: { name: string; emptyDir?: object }[];
      };
    };
    const deployments = template({ mode: 'gateway', controller: site, gateway: site }).filter(
      (o) => o.kind === 'Deployment',
    ) as (Obj & { spec: { template: Pod } })[];
    expect(deployments).toHaveLength(2);
    for (const d of deployments) {
      const pod = d.spec.template;
      expect(pod.metadata.annotations).toEqual({ 'example.com/team': 'platform' });
      expect(pod.spec.containers[0]?.env).toContainEqual(site.extraEnv[0]);
      expect(pod.spec.containers[0]?.volumeMounts).toEqual([
        { name: 'tmp', mountPath: '/tmp' },
        { name: 'ca', mountPath: '/etc/site-ca', readOnly: true },
      ]);
      expect(pod.spec.volumes).toEqual([
        { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
        { name: 'ca', configMap: { name: 'site-ca' } },
      ]);
    }
  });

  it('refuses values it cannot carry out, naming them', () => {
    const mode = run('template', 'switchyard', CHART, '--set', 'mode=linkerd');
    expect(mode.code).not.toBe(0);
    expect(mode.stderr).toMatch(/mode: expected istio, gateway or gateway-api \(got "linkerd"\)/);
    const leaderless = run('template', 'switchyard', CHART, '--set', 'controller.leaderElection=false');
    expect(leaderless.code).not.toBe(0);
    expect(leaderless.stderr).toMatch(/controller.leaderElection: false needs controller.replicas: 1/);
  });

  describe.skipIf(!shared)('on a real API server', () => {
    it.each([
      ['default values', {}],
      [
        'gateway mode with every option',
        {
          mode: 'gateway',
          gateway: {
            redis: { existingSecret: 'redis' },
            service: { type: 'LoadBalancer' },
            tls: { existingSecret: 'gateway-tls' },
          },
          controller: { prometheus: 'http://prometheus.monitoring:9090', namespaces: ['shop', 'payments'] },
          github: { create: true, webhookSecret: 's3cret' },
          tokenJwks: JSON.stringify({ keys: [] }),
        },
      ],
      [
        'gateway-api mode with intercept tokens on an Istio Gateway',
        {
          mode: 'gateway-api',
          controller: { tokenGatewaySelector: 'gateway.networking.k8s.io/gateway-name=public' },
          tokenJwks: JSON.stringify({ keys: [] }),
        },
      ],
    ] as const)('what it renders with %s is accepted (server-side apply, dryRun=All)', async (_, values) => {
      const env = shared as Envtest;
      await createNamespace(adminKube(env), NAMESPACE);
      await createNamespace(adminKube(env), 'istio-system');
      for (const ns of ['shop', 'payments']) await createNamespace(adminKube(env), ns);
      const kc = new KubeConfig();
      kc.loadFromString(env.adminKubeconfig);
      const api = KubernetesObjectApi.makeApiClient(kc);
      const objects = template(values);
      expect(objects.length).toBeGreaterThan(8);
      for (const o of objects) {
        const applied = await api.patch(
          o,
          undefined,
          'All',
          'switchyard-helm-test',
          true,
          'application/apply-patch+yaml' as never,
        );
        expect(applied.kind).toBe(o.kind);
      }
    });
  });
});

/** An object without labels and annotations, and its selectors without Helm's instance label. */
function withoutReleaseLabels(o: Obj): unknown {
  const copy = structuredClone(o) as Obj & { spec?: Record<string, unknown> };
  const strip = (m?: { labels?: unknown; annotations?: unknown }) => {
    if (!m) return;
    delete m.labels;
    delete m.annotations;
  };
  strip(copy.metadata);
  const spec = copy.spec as
    | {
        selector?: Record<string, unknown> & { matchLabels?: Record<string, string> };
        podSelector?: { matchLabels?: Record<string, string> };
        template?: { metadata?: { labels?: unknown; annotations?: unknown } };
      }
    | undefined;
  for (const selector of [spec?.selector?.matchLabels, spec?.podSelector?.matchLabels, spec?.selector])
    if (selector) delete (selector as Record<string, unknown>)['app.kubernetes.io/instance'];
  strip(spec?.template?.metadata);
  return copy;
}
