/**
 * A real Istio control plane and real Envoy for the tests: istiod (`pilot-discovery`) reading the
 * envtest API server, and Envoy proxies (an ingress gateway, sidecars) taking their configuration
 * from it over xDS, each a child process of the test run. Binaries come from MESH_ASSETS, or are
 * built or fetched once by test/mesh/build.sh into .cache/mesh. Where that is impossible (no Go),
 * the caller skips with one line; under CI=true their absence is a failure.
 *
 * Upstream Envoy is not Istio's proxy build: istiod is told not to use Istio's own filters
 * (metadata exchange, ALPN) and mTLS is off, so every listener and cluster it sends is one that
 * upstream Envoy accepts. Any configuration Envoy still rejects (a NACK) is counted by `rejected`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envtestGate, stopChild, testBinaries, waitFor } from './envtest.js';
import { testNetnsAvailable } from './netns.js';
import { unusedPort } from './upstreams.js';

export const MESH_SKIP_REASON =
  'skipping the mesh tests: set MESH_ASSETS to a folder with pilot-discovery and envoy, or install Go so test/mesh/build.sh can build istiod and fetch Envoy';

/** The folder with pilot-discovery and envoy, building them when needed; undefined when impossible. */
export function meshAssets(): string | undefined {
  return testBinaries('MESH_ASSETS', ['pilot-discovery', 'envoy'], 'test/mesh/build.sh');
}

/**
 * Whether a test file can run the mesh: an API server with Istio's CRDs, the mesh binaries, and
 * network namespaces for its test hosts. Without them it is skipped with one line; under CI=true
 * that is a failure.
 */
export function meshTestGate():
  | { envtest: NonNullable<ReturnType<typeof envtestGate>>; assets: string }
  | undefined {
  const envtest = envtestGate({ istio: true });
  if (!envtest) return undefined;
  const assets = meshAssets();
  const missing = !assets
    ? MESH_SKIP_REASON
    : !testNetnsAvailable()
      ? 'skipping the mesh tests: their test hosts need root and `ip netns`'
      : undefined;
  if (missing && process.env.CI) throw new Error(`CI=true, but ${missing}`);
  if (missing) {
    console.warn(missing);
    return undefined;
  }
  return { envtest, assets: assets as string };
}

/** What a mesh test writes with: an admin client's server-side apply. */
type Apply = (o: object) => Promise<unknown>;

/**
 * A Service and, per test host, a Pod (labels only: Istio selects subsets by the labels of the Pod
 * an endpoint names; the Pod never runs) and an EndpointSlice pointing at the host.
 */
export async function serviceWithEndpoints(
  apply: Apply,
  service: { namespace: string; name: string; port: number; selector: Record<string, string> },
  pods: { labels: Record<string, string>; host: { address: string; port: number } }[],
): Promise<void> {
  const { namespace, name } = service;
  await apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector: service.selector, ports: [{ name: 'http', port: service.port, targetPort: 'http' }] },
  });
  for (const [i, { labels, host }] of pods.entries()) {
    const pod = `${name}-${i}`;
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace, labels },
      spec: {
        containers: [{ name: 'app', image: 'app', ports: [{ name: 'http', containerPort: host.port }] }],
      },
    });
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: pod, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: host.port, protocol: 'TCP' }],
      endpoints: [
        {
          addresses: [host.address],
          conditions: { ready: true },
          targetRef: { kind: 'Pod', name: pod, namespace },
        },
      ],
    });
  }
}

/** An Istio Gateway in istio-system for the test's ingress Envoy (labels `istio: ingressgateway`). */
export function ingressGateway(apply: Apply, name: string, port: number, hosts: string[]): Promise<unknown> {
  return apply({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'istio-system' },
    spec: {
      selector: { istio: 'ingressgateway' },
      servers: [{ port: { number: port, name: `http-${name}`, protocol: 'HTTP' }, hosts }],
    },
  });
}

/**
 * A Kubernetes Gateway `istio-system/<name>` of class istio, listening on 80 for routes of any
 * namespace, and the Service istiod binds it to (`<name>-istio`): the test's gateway Envoy (labels
 * `app: gw`) is its instance, listening on `port`.
 */
export async function kubernetesGateway(apply: Apply, name: string, port: number): Promise<void> {
  await apply({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'istio-system' },
    spec: {
      gatewayClassName: 'istio',
      listeners: [
        { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } },
      ],
    },
  });
  await apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `${name}-istio`, namespace: 'istio-system' },
    spec: { selector: { app: 'gw' }, ports: [{ name: 'http', port: 80, targetPort: port }] },
  });
}

/**
 * An Istio Sidecar for the test's client Envoy (labels `app: <name>`): no iptables, an egress
 * listener for `port` on `bind` (a loopback address of its own) to the Services of `hosts`.
 */
export function egressSidecar(
  apply: Apply,
  sidecar: { name: string; namespace: string; port: number; bind: string; hosts: string[] },
): Promise<unknown> {
  return apply({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Sidecar',
    metadata: { name: sidecar.name, namespace: sidecar.namespace },
    spec: {
      workloadSelector: { labels: { app: sidecar.name } },
      egress: [
        {
          port: { number: sidecar.port, protocol: 'HTTP', name: 'http' },
          bind: sidecar.bind,
          captureMode: 'NONE',
          hosts: sidecar.hosts,
        },
      ],
    },
  });
}

/** The last lines a child wrote, for the error when it fails. */
export function captureOutput(child: ChildProcess): () => string {
  const lines: string[] = [];
  const keep = (d: Buffer) => {
    lines.push(...String(d).split('\n').filter(Boolean));
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => lines.join('\n');
}

export interface Istiod {
  xdsAddress: string;
  pid: number;
  /** istiod's recent log lines (a NACK shows there as "ACK ERROR"). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * istiod on loopback ports, reading the API server of `kubeconfig` (a kubeconfig's text); with
 * `gatewayApi`, reading Gateway API routes and Gateways too (and writing their status), but
 * making no Deployment for a Gateway: the test runs its Envoy.
 */
export async function startIstiod(
  assets: string,
  kubeconfig: string,
  options: { gatewayApi?: boolean } = {},
): Promise<Istiod> {
  const gatewayApi = options.gatewayApi ? 'true' : 'false';
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-istiod-'));
  const [xds, http, https, monitoring] = await Promise.all([
    unusedPort(),
    unusedPort(),
    unusedPort(),
    unusedPort(),
  ]);
  writeFileSync(join(dir, 'kubeconfig'), kubeconfig);
  writeFileSync(
    join(dir, 'mesh.yaml'),
    [
      'rootNamespace: istio-system',
      'trustDomain: cluster.local',
      // Without istio-agent nothing serves certificates: mTLS clusters would wait for them forever.
      'enableAutoMtls: false',
      'outboundTrafficPolicy: {mode: REGISTRY_ONLY}',
      `defaultConfig: {discoveryAddress: "127.0.0.1:${xds}"}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'networks.yaml'), '');
  const child = spawn(
    join(assets, 'pilot-discovery'),
    [
      'discovery',
      '--kubeconfig',
      join(dir, 'kubeconfig'),
      '--meshConfig',
      join(dir, 'mesh.yaml'),
      '--networksConfig',
      join(dir, 'networks.yaml'),
      '--domain',
      'cluster.local',
      '--clusterID',
      'Kubernetes',
      '--grpcAddr',
      `127.0.0.1:${xds}`,
      '--httpAddr',
      `127.0.0.1:${http}`,
      '--httpsAddr',
      `127.0.0.1:${https}`,
      '--monitoringAddr',
      `127.0.0.1:${monitoring}`,
      '--secureGRPCAddr',
      '',
      '--ctrlz_port',
      '0',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        POD_NAMESPACE: 'istio-system',
        POD_NAME: 'istiod-test',
        REVISION: 'default',
        ISTIOD_CUSTOM_HOST: 'istiod.istio-system.svc',
        PILOT_ENABLE_GATEWAY_API: gatewayApi,
        PILOT_ENABLE_ALPHA_GATEWAY_API: gatewayApi,
        PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER: 'false',
        PILOT_ENABLE_GATEWAY_API_STATUS: gatewayApi,
        PILOT_ENABLE_GATEWAY_API_GATEWAYCLASS_CONTROLLER: gatewayApi,
        VALIDATION_WEBHOOK_CONFIG_NAME: '',
        INJECTION_WEBHOOK_CONFIG_NAME: '',
        PILOT_ENABLE_STATUS: 'false',
        ENABLE_CA_SERVER: 'false',
        PILOT_ENABLE_ANALYSIS: 'false',
        // Istio's own filters are not in upstream Envoy: a listener naming them would be NACKed.
        PILOT_ENABLE_METADATA_EXCHANGE: 'false',
        PILOT_ENABLE_ALPN_FILTER: 'false',
        // Push a change within milliseconds instead of istiod's 100 ms debounce.
        PILOT_DEBOUNCE_AFTER: '10ms',
      },
    },
  );
  const log = captureOutput(child);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`istiod exited (${code}):\n${log()}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([
    waitFor(async () => (await fetch(`http://127.0.0.1:${http}/ready`)).ok, 'istiod', 60_000),
    exited,
  ]);
  return {
    xdsAddress: `127.0.0.1:${xds}`,
    pid: child.pid as number,
    log,
    async stop() {
      // Every mesh test fails on a refused update, whether or not it asked: checked at stop.
      const refused = /ACK ERROR/.test(log());
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
      if (refused) throw new Error(`a proxy refused configuration istiod pushed (ACK ERROR):\n${log()}`);
    },
  };
}

export interface EnvoyOptions {
  /** `router`: a gateway proxy (listens where Istio Gateways bound to its labels say); `sidecar`. */
  role: 'router' | 'sidecar';
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** The proxy's own address as istiod sees it. */
  ip?: string;
}

export interface Envoy {
  adminUrl: string;
  pid: number;
  /** Configuration updates Envoy refused (NACKs), summed over every xDS stream. */
  rejected(): Promise<number>;
  /** One stat's value (`cluster.x.upstream_rq_total`), or 0 when Envoy has none by that name. */
  stat(name: string): Promise<number>;
  log(): string;
  stop(): Promise<void>;
}

/** An Envoy that gets its configuration from `istiod` as the proxy `options` describe. */
export async function startEnvoy(assets: string, istiod: Istiod, options: EnvoyOptions): Promise<Envoy> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-envoy-'));
  const admin = await unusedPort();
  const ip = options.ip ?? '127.0.0.1';
  const pod = `${options.name}-${randomBytes(3).toString('hex')}`;
  const [xdsHost, xdsPort] = istiod.xdsAddress.split(':') as [string, string];
  const http2 = {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
  const bootstrap = {
    node: {
      id: `${options.role}~${ip}~${pod}.${options.namespace}~${options.namespace}.svc.cluster.local`,
      cluster: `${options.name}.${options.namespace}`,
      metadata: {
        NAMESPACE: options.namespace,
        NAME: pod,
        CLUSTER_ID: 'Kubernetes',
        MESH_ID: 'cluster.local',
        ISTIO_VERSION: '1.31.0',
        INSTANCE_IPS: ip,
        LABELS: options.labels,
        WORKLOAD_NAME: options.name,
        SERVICE_ACCOUNT: 'default',
        ...(options.role === 'sidecar' ? { INTERCEPTION_MODE: 'NONE' } : {}),
      },
    },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: admin } } },
    // The stats tags of Istio's proxy bootstrap (tools/packaging/common/envoy_bootstrap.json in
    // istio/istio) that name per-cluster series in /stats/prometheus: istiod gives each cluster the
    // stat name `<cluster>;`, so `cluster_name` is the whole name, dots and all.
    stats_config: {
      use_all_default_tags: false,
      stats_tags: [
        { tag_name: 'cluster_name', regex: '^cluster(\\.(.+);)' },
        { tag_name: 'response_code', regex: '_rq(_(\\d{3}))$' },
        { tag_name: 'response_code_class', regex: '_rq(_(\\dxx))$' },
      ],
    },
    // Envoy merges histograms (request times) at each stats flush, 5 s by default: the tests'
    // analysis intervals are seconds long, so it flushes twice a second here.
    stats_flush_interval: '0.5s',
    dynamic_resources: {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: 'xds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'xds-grpc',
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: {
                      address: { socket_address: { address: xdsHost, port_value: Number(xdsPort) } },
                    },
                  },
                ],
              },
            ],
          },
          typed_extension_protocol_options: http2,
        },
        {
          // istiod's clusters name it; nothing serves it (mTLS is off).
          name: 'sds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'sds-grpc',
            endpoints: [
              { lb_endpoints: [{ endpoint: { address: { pipe: { path: join(dir, 'no-sds.sock') } } } }] },
            ],
          },
          typed_extension_protocol_options: http2,
        },
      ],
    },
  };
  writeFileSync(join(dir, 'bootstrap.json'), JSON.stringify(bootstrap));
  const child = spawn(
    join(assets, 'envoy'),
    [
      '-c',
      join(dir, 'bootstrap.json'),
      '--disable-hot-restart',
      '--concurrency',
      '1',
      '--log-level',
      'warn',
      '--drain-time-s',
      '1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = captureOutput(child);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`envoy ${options.name} exited (${code}):\n${log()}`))),
  );
  exited.catch(() => undefined);
  const adminUrl = `http://127.0.0.1:${admin}`;
  await Promise.race([
    waitFor(
      async () => (await (await fetch(`${adminUrl}/ready`)).text()).trim() === 'LIVE',
      `envoy ${options.name}`,
      30_000,
    ).catch(async (e: Error) => {
      const state = await (await fetch(`${adminUrl}/ready`)).text().catch(() => 'no answer');
      const initializing = await (await fetch(`${adminUrl}/init_dump`)).text().catch(() => '');
      throw new Error(
        `${e.message} (state ${state.trim()}; waiting for: ${initializing})\n${log()}\nistiod:\n${istiod.log()}`,
      );
    }),
    exited,
  ]);
  const stats = async (filter: string) =>
    (await (await fetch(`${adminUrl}/stats?filter=${encodeURIComponent(filter)}`)).text())
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(': ') as [string, string]);
  const rejected = async () => {
    const counters = await stats('update_rejected$');
    // Envoy always has the CDS and LDS counters: none found means the stats were not read.
    if (counters.length < 2) throw new Error(`no update_rejected stats from ${adminUrl}`);
    return counters.reduce((n, [, v]) => n + Number(v), 0);
  };
  return {
    adminUrl,
    pid: child.pid as number,
    rejected,
    async stat(name) {
      const hit = (await stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`))[0];
      return hit ? Number(hit[1]) : 0;
    },
    log,
    async stop() {
      // Every mesh test fails on a NACK, whether or not it asked: checked at stop.
      const refused = child.exitCode === null ? await rejected().catch(() => 0) : 0;
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
      if (refused > 0)
        throw new Error(`Envoy ${options.name} refused ${refused} configuration update(s) (NACK):\n${log()}`);
    },
  };
}
