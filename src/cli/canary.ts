/**
 * The release engineer's canary commands: `canary set POLICY WEIGHT` and `canary status POLICY`.
 * `set` server-side applies only spec.canary.weight with its own field manager (switchyard-cli), so
 * it composes with GitOps owners of the rest of the spec; `status` shows the target next to the
 * split in force, read back from the VirtualService the controller wrote.
 */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../../controllers/kube.js';
import { UPSTREAM_HEADER } from '../compiler/plan.js';
import { formatProblem, problem } from '../core/errors.js';
import { API_VERSION, type TrafficPolicy } from '../resources/schema.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';

export interface KubeCliOptions {
  namespace: string;
  kubeconfig?: string;
  output: string;
}

export function kubeFromCli(opts: { kubeconfig?: string }): Kube {
  return clientNodeKube(kubeConfigFrom(opts.kubeconfig ? readFileSync(opts.kubeconfig, 'utf8') : undefined));
}

function invalid(io: CliIO, message: string): number {
  io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', message))}\n`);
  return EXIT_INVALID;
}

type LivePolicy = Omit<TrafficPolicy, 'metadata' | 'status'> & {
  kind: string;
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
};

async function readPolicy(kube: Kube, namespace: string, name: string): Promise<LivePolicy | undefined> {
  return kube.get<LivePolicy>({ apiVersion: API_VERSION, kind: 'TrafficPolicy', namespace, name });
}

export async function canarySetCommand(
  name: string,
  weightText: string,
  opts: Omit<KubeCliOptions, 'output'>,
  io: CliIO,
  kube = kubeFromCli(opts),
): Promise<number> {
  const weight = Number(weightText);
  if (!/^[0-9]+$/.test(weightText) || weight > 100)
    return invalid(io, `weight: expected an integer from 0 to 100 (got ${JSON.stringify(weightText)})`);
  const policy = await readPolicy(kube, opts.namespace, name);
  if (!policy)
    return invalid(
      io,
      `no TrafficPolicy ${opts.namespace}/${name} (list them with: kubectl get trafficpolicies -n ${opts.namespace})`,
    );
  if (!policy.spec.canary?.version)
    return invalid(
      io,
      `TrafficPolicy ${opts.namespace}/${name} has no canary: set spec.canary.version first`,
    );
  await kube.apply(
    {
      apiVersion: API_VERSION,
      kind: 'TrafficPolicy',
      metadata: { name, namespace: opts.namespace },
      spec: { canary: { version: policy.spec.canary.version, weight } },
    } as never,
    'switchyard-cli',
    true,
  );
  io.stdout(
    `${opts.namespace}/${name}: canary ${policy.spec.canary.version} weight ${policy.spec.canary.weight} -> ${weight}\n`,
  );
  return EXIT_OK;
}

export interface CanaryStatus {
  policy: string;
  stable: string;
  canary: string | null;
  targetWeight: number;
  /** Canary weight of the split route in force, or null when it cannot be read (no VirtualService yet). */
  observedWeight: number | null;
  ready: string;
}

export async function canaryStatusCommand(
  name: string,
  opts: KubeCliOptions,
  io: CliIO,
  kube = kubeFromCli(opts),
): Promise<number> {
  const policy = await readPolicy(kube, opts.namespace, name);
  if (!policy) return invalid(io, `no TrafficPolicy ${opts.namespace}/${name}`);
  type Vs = {
    spec?: {
      http?: {
        name: string;
        route: { weight?: number; headers?: { response?: { set?: Record<string, string> } } }[];
      }[];
    };
  };
  const vs = await kube.get<Vs & { apiVersion: string; kind: string }>({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    namespace: opts.namespace,
    name,
  });
  const split = vs?.spec?.http?.find((r) => r.name === 'split');
  const canaryUpstream = policy.spec.canary
    ? `${policy.spec.service}/${policy.spec.canary.version}`
    : undefined;
  const observed = split
    ? (split.route.find((d) => d.headers?.response?.set?.[UPSTREAM_HEADER] === canaryUpstream)?.weight ?? 0)
    : null;
  const ready = policy.status?.conditions?.find((c) => c.type === 'Ready');
  const status: CanaryStatus = {
    policy: `${opts.namespace}/${name}`,
    stable: policy.spec.stable,
    canary: policy.spec.canary?.version ?? null,
    targetWeight: policy.spec.canary?.weight ?? 0,
    observedWeight: observed,
    ready: ready ? `${ready.status} (${ready.reason}): ${ready.message}` : 'Unknown: not reconciled yet',
  };
  if (opts.output === 'json') io.stdout(`${JSON.stringify(status, null, 2)}\n`);
  else if (opts.output === 'yaml') io.stdout(stringify(status));
  else {
    const inForce =
      status.observedWeight === null ? 'unknown (no VirtualService yet)' : `${status.observedWeight}%`;
    const lines = [
      `policy:    ${status.policy}`,
      `stable:    ${status.stable}`,
      `canary:    ${status.canary ?? '(none)'}`,
      `weight:    target ${status.targetWeight}%, in force ${inForce}`,
      `ready:     ${status.ready}`,
    ];
    io.stdout(`${lines.join('\n')}\n`);
  }
  return EXIT_OK;
}
