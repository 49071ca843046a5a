/**
 * A real Envoy Gateway (v1.9.1, built from its Go module by test/envoy-gateway/build.sh) reading
 * the envtest API server, with its Envoy run as a host process: our Envoy 1.40 binary, put where
 * Envoy Gateway looks for that version, so nothing is downloaded. What Envoy Gateway needs and
 * does not let one configure is made for it and removed after: its xDS server certificate at the
 * fixed path /certs (root only, one run at a time on a machine), the Secret envoy-gateway-system/
 * envoy. It listens on fixed ports (18000 xDS, 19001, 8080, 8081, 9443; its Envoy 19003), none of
 * which a test takes (they take free ephemeral ports).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, testBinaries } from './envtest.js';
import { captureOutput } from './mesh.js';
import { unusedPort } from './upstreams.js';

export const ENVOY_GATEWAY_SKIP_REASON =
  'skipping the Envoy Gateway tests: set ENVOY_GATEWAY_ASSETS to a folder with envoy-gateway and crds/, or install Go so test/envoy-gateway/build.sh can build it';

/** The folder with envoy-gateway and its CRDs, building it when needed; undefined when impossible. */
export function envoyGatewayAssets(): string | undefined {
  return testBinaries('ENVOY_GATEWAY_ASSETS', ['envoy-gateway', 'crds'], 'test/envoy-gateway/build.sh');
}

/**
 * Envoy Gateway's own CRDs (EnvoyProxy, BackendTrafficPolicy, …), as YAML texts; `only` the kinds
 * of these plurals (the EnvoyProxy CRD alone is 1.4 MB: an API server that needs only the
 * BackendTrafficPolicy starts and lists faster without it).
 */
export function envoyGatewayCrds(assets: string, only?: readonly string[]): string[] {
  const dir = join(assets, 'crds');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .filter((f) => !only || only.some((plural) => f === `gateway.envoyproxy.io_${plural}.yaml`))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'));
}

/** The GatewayClass every test Gateway names: Envoy Gateway's, with our Envoy as a host process. */
export const ENVOY_GATEWAY_CLASS = 'eg';
const ENVOY_VERSION = '1.40.0';
const SYSTEM_NAMESPACE = 'envoy-gateway-system';

export interface EnvoyGateway {
  /** Envoy Gateway's and its Envoy's recent log lines. */
  log(): string;
  /** Configuration updates its Envoy refused (NACKs), summed over every xDS stream. */
  rejected(): Promise<number>;
  stop(): Promise<void>;
}

type Apply = (o: object) => Promise<unknown>;

/**
 * Links /certs to this run's certificates, waiting while another run holds it: the link is the
 * lock that keeps two Envoy Gateways (fixed path, fixed ports) from running at once. A link whose
 * run is gone (its folder removed) is taken over; anything else at /certs is left alone.
 */
async function takeCerts(target: string): Promise<void> {
  const until = Date.now() + 150_000;
  for (;;) {
    try {
      symlinkSync(target, '/certs');
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = lstatSync('/certs');
    if (!held.isSymbolicLink() || !readlinkSync('/certs').includes('switchyard-eg-'))
      throw new Error("/certs exists and is not a test run's: Envoy Gateway reads its certificates there");
    if (!existsSync(readlinkSync('/certs'))) rmSync('/certs', { force: true });
    else if (Date.now() > until)
      throw new Error('/certs is held by another Envoy Gateway run for over 150 s');
    else await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Starts Envoy Gateway against the API server of `kubeconfig` (its text), with the objects it
 * needs applied through `apply`: its namespace and TLS Secret, the EnvoyProxy that names our
 * Envoy's version, and the GatewayClass `eg` (all of one class's Gateways in one Envoy).
 */
export async function startEnvoyGateway(
  assets: string,
  envoyBinary: string,
  kubeconfig: string,
  apply: Apply,
): Promise<EnvoyGateway> {
  const work = mkdtempSync(join(tmpdir(), 'switchyard-eg-'));
  const home = {
    config: join(work, 'config'),
    data: join(work, 'data'),
    state: join(work, 'state'),
    run: join(work, 'run'),
  };
  for (const d of Object.values(home)) mkdirSync(d, { recursive: true });
  const binary = join(assets, 'envoy-gateway');
  execFileSync(binary, ['certgen', '--local', '--config-home', home.config], { stdio: 'ignore' });
  await takeCerts(join(home.config, 'certs', 'envoy-gateway'));
  const envoyDir = join(home.data, 'envoy-versions', ENVOY_VERSION, 'bin');
  mkdirSync(envoyDir, { recursive: true });
  symlinkSync(envoyBinary, join(envoyDir, 'envoy'));
  const certs = join(home.config, 'certs', 'envoy');
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NAMESPACE } });
  await apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'envoy', namespace: SYSTEM_NAMESPACE },
    type: 'kubernetes.io/tls',
    data: Object.fromEntries(
      ['tls.crt', 'tls.key', 'ca.crt'].map((f) => [f, readFileSync(join(certs, f)).toString('base64')]),
    ),
  });
  await apply({
    apiVersion: 'gateway.envoyproxy.io/v1alpha1',
    kind: 'EnvoyProxy',
    metadata: { name: 'host', namespace: SYSTEM_NAMESPACE },
    spec: { mergeGateways: true, provider: { type: 'Host', host: { envoyVersion: ENVOY_VERSION } } },
  });
  await apply({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: ENVOY_GATEWAY_CLASS },
    spec: {
      controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
      parametersRef: {
        group: 'gateway.envoyproxy.io',
        kind: 'EnvoyProxy',
        namespace: SYSTEM_NAMESPACE,
        name: 'host',
      },
    },
  });
  writeFileSync(join(work, 'kubeconfig'), kubeconfig);
  writeFileSync(
    join(work, 'envoy-gateway.yaml'),
    JSON.stringify({
      apiVersion: 'gateway.envoyproxy.io/v1alpha1',
      kind: 'EnvoyGateway',
      gateway: { controllerName: 'gateway.envoyproxy.io/gatewayclass-controller' },
      provider: {
        type: 'Custom',
        custom: {
          resource: { type: 'Kubernetes', kubernetes: { leaderElection: { disable: true } } },
          infrastructure: {
            type: 'Host',
            host: {
              configHome: home.config,
              dataHome: home.data,
              stateHome: home.state,
              runtimeDir: home.run,
            },
          },
        },
      },
    }),
  );
  const child: ChildProcess = spawn(binary, ['server', '--config-path', join(work, 'envoy-gateway.yaml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: work, KUBECONFIG: join(work, 'kubeconfig') },
  });
  const log = captureOutput(child);
  return {
    log,
    async rejected() {
      // func-e writes the admin address of each Envoy it runs into that run's runtime folder.
      const runs = readdirSync(home.run).map((r) => join(home.run, r, 'admin-address.txt'));
      const files = runs.filter((f) => existsSync(f));
      if (files.length === 0) throw new Error(`Envoy Gateway's Envoy has no admin address yet\n${log()}`);
      let total = 0;
      for (const f of files) {
        const stats = await (
          await fetch(`http://${readFileSync(f, 'utf8').trim()}/stats?filter=update_rejected$`)
        ).text();
        const counters = [...stats.matchAll(/update_rejected: (\d+)/g)];
        // LDS, CDS, RDS at least: none at all would mean the stats were not read.
        if (counters.length < 3) throw new Error(`no xDS update_rejected counters in ${stats}`);
        for (const m of counters) total += Number(m[1]);
      }
      return total;
    },
    async stop() {
      // SIGTERM: Envoy Gateway stops its Envoy too.
      await stopChild(child);
      // The lock is this run's: released for the next one.
      if (existsSync('/certs') && readlinkSync('/certs').startsWith(work)) rmSync('/certs', { force: true });
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/**
 * The Gateways `istio-system/public` and `istio-system/previews` of class `eg`, for routes of any
 * namespace, each listening on a free port of its own: in host mode a listener's port is the port
 * Envoy listens on. Returns the ports.
 */
export async function envoyGatewayGateways(apply: Apply): Promise<{ public: number; previews: number }> {
  const ports = { public: await unusedPort(), previews: await unusedPort() };
  for (const name of ['public', 'previews'] as const)
    await apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name, namespace: 'istio-system' },
      spec: {
        gatewayClassName: ENVOY_GATEWAY_CLASS,
        listeners: [
          {
            name: 'http',
            port: ports[name],
            protocol: 'HTTP',
            allowedRoutes: { namespaces: { from: 'All' } },
          },
        ],
      },
    });
  return ports;
}
