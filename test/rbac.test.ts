/**
 * The RBAC in deploy/install grants exactly what the controller uses: a controller run in each mode
 * (as its ServiceAccount, on an API server of its own with an audit log) goes through a policy's and
 * a preview's whole life, and the verbs the audit log records for it are compared, both ways, with
 * the rules of that mode. Each run watches one namespace and has the RBAC `switchyard install -n`
 * makes for it (Roles there, not ClusterRoles): what a namespaced install needs is what it gets,
 * and the cluster-wide install's ClusterRoles carry the same rules. The PR bot's part (a pull request opened and closed through the webhook,
 * and reported to a GitHub stand-in) is in the run too. A missing permission fails the run with a real Forbidden; a rule no call
 * needs fails the comparison.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installManifests } from '../cli/install.js';
import { type RunningController, startController } from '../cli/start-controller.js';
import { backendFor, CONTROLLER_MODES, type ControllerMode } from '../controllers/backends/index.js';
import { createLogger } from '../core/common/logger.js';
import { GATEWAY_API_V1 } from '../core/gateway-api/http-route.js';
import { ENVOY_GATEWAY_V1ALPHA1 } from '../core/gateway-api/rate-limits.js';
import {
  type TokenAuthenticationOptions,
  tokenVerificationKinds,
} from '../core/istio/request-authentication.js';
import type { Kube } from '../kube/client.js';
import { kubeConfigFrom } from '../kube/client.js';
import { githubClients } from '../pr-bot/github-client.js';
import {
  adminKube,
  CONTROLLER_USER,
  createNamespace,
  markAvailable,
  stableWorkload,
  writeEndpoints,
} from './support/cluster.js';
import { ENVOY_GATEWAY_SKIP_REASON, envoyGatewayAssets, envoyGatewayCrds } from './support/envoy-gateway.js';
import {
  type AuditEvent,
  type Envtest,
  envtestGate,
  installCrds,
  startEnvtestWithCrds,
} from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { postDelivery, pullRequestEvent, sha } from './support/github-deliveries.js';
import { type GithubStandIn, startGithubStandIn } from './support/github-stand-in.js';
import { testTokenKeys } from './support/tokens.js';

const gate = envtestGate({ istio: true });
/** Every mode: a mode added to the controller is checked here as soon as it exists. */
const MODES = CONTROLLER_MODES;
/** Envoy Gateway's CRDs, for its BackendTrafficPolicy (gateway-api mode's rate limits). */
const egCrds = envoyGatewayAssets();
if (!egCrds && process.env.CI) throw new Error(`CI=true, but ${ENVOY_GATEWAY_SKIP_REASON}`);
const WEBHOOK_SECRET = 'rbac webhook secret';
const API = 'switchyard.dev/v1alpha1';
const RBAC_KINDS = new Set([
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
]);

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Role = KubernetesObject & { rules?: Rule[] };

/** The RBAC objects `switchyard install --mode <mode> -n <ns>` prints. */
const rbacOf = (mode: ControllerMode, ns: string) =>
  (installManifests({ mode, namespace: [ns] }) as Role[]).filter((o) => RBAC_KINDS.has(o.kind ?? ''));

/** `group/resource verb` for every rule of the controller's roles among these objects. */
function granted(objects: Role[]): Set<string> {
  const out = new Set<string>();
  for (const doc of objects) {
    if (
      (doc.kind !== 'ClusterRole' && doc.kind !== 'Role') ||
      doc.metadata?.name?.startsWith('switchyard-gateway')
    )
      continue;
    for (const r of doc.rules ?? [])
      for (const g of r.apiGroups)
        for (const res of r.resources) for (const v of r.verbs) out.add(`${g}/${res} ${v}`);
  }
  return out;
}

/** The same, from the audit log: a server-side apply that created its object needed create. */
function used(events: AuditEvent[], belongs: (e: AuditEvent) => boolean): Set<string> {
  const out = new Set<string>();
  for (const e of events) {
    if (e.user.username !== CONTROLLER_USER || !e.objectRef?.resource || !belongs(e)) continue;
    const resource = `${e.objectRef.apiGroup ?? ''}/${e.objectRef.resource}${e.objectRef.subresource ? `/${e.objectRef.subresource}` : ''}`;
    out.add(`${resource} ${e.verb}`);
    if (e.verb === 'patch' && e.responseStatus?.code === 201) out.add(`${resource} create`);
  }
  return out;
}

describe.skipIf(!gate)('RBAC in deploy/install against the calls the controller makes', () => {
  let env: Envtest;
  let admin: Kube;
  const controllers: RunningController[] = [];
  let github: GithubStandIn;
  const windows: Partial<Record<ControllerMode, [Date, Date]>> = {};

  /** One policy's and one preview's whole life in `ns`, with a controller of `mode` watching it. */
  async function lifecycle(mode: ControllerMode, ns: string) {
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'web');
    const start = (tokens?: TokenAuthenticationOptions) =>
      startController({
        kubeconfig: kubeConfigFrom(env.kubeconfigFor(CONTROLLER_USER)),
        logger: createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' }),
        mode,
        namespaces: [ns],
        port: 0,
        host: '127.0.0.1',
        githubWebhookSecret: WEBHOOK_SECRET,
        github: githubClients({ token: 'rbac-test', baseUrl: github.url }),
        leaderElection: {
          namespace: 'switchyard-system',
          name: `switchyard-controller-${mode}`,
          identity: `rbac-test-${mode}`,
          leaseDurationMs: 3000,
          renewDeadlineMs: 2000,
          retryPeriodMs: 400,
        },
        ...(tokens ? { tokenAuthentication: { tokens } } : {}),
      });
    // Where the controller keeps Istio's token objects, with keys: they are written (and removed
    // further down): the RequestAuthentication, and in gateway-api mode the EnvoyFilter beside it.
    const keeps = backendFor(mode).tokensCheckedBy === 'controller';
    const controller = await start(keeps ? { jwks: (await testTokenKeys()).jwks } : undefined);
    controllers.push(controller);
    const tokenObjects = tokenVerificationKinds(backendFor(mode).tokenClaimHeaders).map((k) => ({
      ...k,
      namespace: 'istio-system',
      name: 'switchyard-intercept-tokens',
    }));
    if (keeps) for (const ref of tokenObjects) await eventually(() => admin.get(ref), 10_000);
    const get = <T extends KubernetesObject>(apiVersion: string, kind: string, name: string) =>
      admin.get<T>({ apiVersion, kind, namespace: ns, name });
    const policy = (spec: Record<string, unknown>, annotations: Record<string, string> = {}) =>
      admin.apply(
        {
          apiVersion: API,
          kind: 'TrafficPolicy',
          metadata: { name: 'web', namespace: ns, annotations },
          spec: {
            service: 'web',
            port: 80,
            stable: 'v1',
            previews: {
              repository: 'acme/web',
              image: 'ghcr.io/acme/web:{sha7}',
              domain: 'preview.example.com',
              gateway: 'istio-system/previews',
            },
            ...spec,
          },
        } as KubernetesObject,
        'author',
        true,
      );
    const preview = (env: Record<string, string>, labels: Record<string, string> = {}) =>
      admin.apply(
        {
          apiVersion: API,
          kind: 'Preview',
          metadata: { name: 'web-pr-1-0000001', namespace: ns, labels },
          spec: { policy: 'web', repository: 'acme/web', pullRequest: 1, commit: '0000001', ttl: '4s', env },
        } as KubernetesObject,
        'pr-bot',
        true,
      );
    const phase = async () =>
      (await get<KubernetesObject & { status?: { phase?: string } }>(API, 'Preview', 'web-pr-1-0000001'))
        ?.status?.phase;

    // Rate limits: an EnvoyFilter in mesh mode; with Envoy Gateway's CRDs, a BackendTrafficPolicy for
    // the policy's route on a Gateway in gateway-api mode.
    const limited = {
      canary: { version: 'v2', weight: 20 },
      rateLimits: [{ name: 'all', key: { clientIp: {} }, limit: 10, window: '1s' }],
      ...(mode === 'gateway-api' ? { gateways: ['istio-system/public'] } : {}),
    };
    await policy(limited);
    if (mode === 'gateway-api' && egCrds)
      await eventually(() => get(ENVOY_GATEWAY_V1ALPHA1, 'BackendTrafficPolicy', 'web-ratelimit'), 10_000);
    await preview({ MODE: 'a' });
    await eventually(() => get('apps/v1', 'Deployment', 'web-pr-1-0000001'), 10_000);
    await markAvailable(env, ns, 'web-pr-1-0000001');
    await eventually(async () => (await phase()) === 'Ready', 10_000);
    await preview({ MODE: 'b' }); // the preview's Deployment changes
    await eventually(async () => {
      const d = await get<
        KubernetesObject & { spec: { template: { spec: { containers: { env?: { value: string }[] }[] } } } }
      >('apps/v1', 'Deployment', 'web-pr-1-0000001');
      return d?.spec.template.spec.containers[0]?.env?.[0]?.value === 'b';
    }, 10_000);
    // The stable Service gains a port: the Services cloned from it change.
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: ns },
        spec: {
          selector: { app: 'web' },
          ports: [
            { name: 'http', port: 80, targetPort: 8080 },
            { name: 'metrics', port: 9090, targetPort: 9090 },
          ],
        },
      } as KubernetesObject,
      'test',
      true,
    );
    await policy(limited, { touched: '1' });
    await preview({ MODE: 'b' }, { touched: '1' });
    await eventually(async () => {
      const s = await get<KubernetesObject & { spec: { ports: unknown[] } }>(
        'v1',
        'Service',
        'web-pr-1-0000001',
      );
      return s?.spec.ports.length === 2;
    }, 10_000);
    // A progressive canary (no analysis) passes its one step and is promoted by the controller. In
    // gateway mode the run waits for a ready endpoint of v2's Service (kube-controller-manager's
    // EndpointSlice, written here as it would), which the controller lists.
    if (mode !== 'istio') await writeEndpoints(admin, ns, 'web--v2', [{ address: '10.0.0.2', port: 8080 }]);
    // gRPC: the policy's route becomes a GRPCRoute, and an HTTPRoute again further down.
    if (mode === 'gateway-api') {
      await policy({ upstreamProtocol: 'http2' });
      await eventually(() => get(GATEWAY_API_V1, 'GRPCRoute', 'web'), 10_000);
    }
    await policy({ canary: { version: 'v2', steps: [{ weight: 50, pause: '1s' }], autoPromote: true } });
    await eventually(
      async () =>
        (await get<KubernetesObject & { spec: { stable: string } }>(API, 'TrafficPolicy', 'web'))?.spec
          .stable === 'v2',
      15_000,
    );
    // No canary and no rate limit any more: a subset and a Service go, an EnvoyFilter is deleted.
    await policy({});
    const gone =
      mode === 'istio'
        ? ['networking.istio.io/v1alpha3', 'EnvoyFilter', 'web-ratelimit-all']
        : ['v1', 'Service', 'web--v2'];
    await eventually(
      async () => (await get(gone[0] as string, gone[1] as string, gone[2] as string)) === undefined,
      10_000,
    );
    if (mode === 'gateway-api' && egCrds)
      await eventually(
        async () =>
          (await get(ENVOY_GATEWAY_V1ALPHA1, 'BackendTrafficPolicy', 'web-ratelimit')) === undefined,
        10_000,
      );
    // The preview expires (TTL 4s from its last spec change): routes, Deployment, Service, finalizer.
    await eventually(async () => (await get(API, 'Preview', 'web-pr-1-0000001')) === undefined, 15_000);
    await eventually(async () => (await get('v1', 'Service', 'web-pr-1-0000001')) === undefined, 5_000);
    // The PR bot: a pull request opened and closed through the webhook, reported to GitHub.
    const bot = `web-pr-2-${sha(2, 1).slice(0, 7)}`;
    for (const [action, minute] of [
      ['opened', 0],
      ['closed', 1],
    ] as const) {
      const payload = pullRequestEvent(action, 2, sha(2, 1), minute, 'acme/web');
      const status = await postDelivery(controller.url, 'pull_request', payload, {
        id: `${mode}-${action}`,
        secret: WEBHOOK_SECRET,
      });
      expect(status).toBe(202);
      if (action === 'opened') await eventually(() => get(API, 'Preview', bot), 10_000);
    }
    await eventually(async () => (await get(API, 'Preview', bot)) === undefined, 15_000);
    expect(github.comments.get('acme/web#2')?.[0]?.body).toContain('No preview is running');
    await controller.stop(); // releases the Lease
    if (keeps) {
      // Started again without keys: the token objects go, and no token opens anything.
      const keyless = await start();
      controllers.push(keyless);
      for (const ref of tokenObjects)
        await eventually(async () => (await admin.get(ref)) === undefined, 10_000);
      await keyless.stop();
    }
  }

  beforeAll(async () => {
    github = await startGithubStandIn();
    env = await startEnvtestWithCrds(gate as NonNullable<typeof gate>, { audit: true });
    if (egCrds) await installCrds(env.adminKubeconfig, envoyGatewayCrds(egCrds, ['backendtrafficpolicies']));
    admin = adminKube(env);
    for (const mode of MODES)
      for (const o of rbacOf(mode, `rbac-${mode}`)) {
        if (o.metadata?.namespace) await createNamespace(admin, o.metadata.namespace);
        await admin.apply(o, 'test', true);
      }
    // One after the other: cluster-scoped calls (namespaces) are told apart by when they were made.
    for (const mode of MODES) {
      const start = new Date();
      await lifecycle(mode, `rbac-${mode}`);
      windows[mode] = [start, new Date()];
    }
  }, 120_000);
  afterAll(async () => {
    for (const c of controllers) await c.stop();
    await env?.stop();
    await github?.close();
  });

  const ofMode = (mode: ControllerMode) => (e: AuditEvent) => {
    const at = new Date(e.requestReceivedTimestamp ?? 0);
    const [from, to] = windows[mode] ?? [new Date(0), new Date(0)];
    return at >= from && at <= to;
  };

  it.each(MODES)('%s mode: every call is granted and every grant is called', (mode) => {
    const calls = used(env.auditEvents?.() ?? [], ofMode(mode));
    expect(calls.size).toBeGreaterThan(10);
    // Without Envoy Gateway's CRDs (no Go to build them here) its policies are never written.
    const grants = [...granted(rbacOf(mode, `rbac-${mode}`))].filter(
      (g) => egCrds || !g.startsWith('gateway.envoyproxy.io/'),
    );
    expect([...calls].sort()).toEqual(grants.sort());
  });

  it.each(MODES)('%s mode: no call was forbidden, and none reached a namespace not given', (mode) => {
    const mine = (env.auditEvents?.() ?? []).filter(
      (e) => e.user.username === CONTROLLER_USER && ofMode(mode)(e),
    );
    expect(mine.filter((e) => e.responseStatus?.code === 403).map((e) => e.requestURI)).toEqual([]);
    const elsewhere = mine.filter(
      (e) =>
        e.objectRef?.namespace &&
        ![`rbac-${mode}`, 'switchyard-system', 'istio-system'].includes(e.objectRef.namespace),
    );
    expect(elsewhere.map((e) => e.requestURI)).toEqual([]);
  });
});
