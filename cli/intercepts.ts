/**
 * `switchyard intercept add|remove|list POLICY`: a tester's route to another version or a preview,
 * changed in place on the cluster's TrafficPolicy (validated first; a concurrent change fails
 * rather than being overwritten). Intercepts are tried in order; `add` appends.
 */
import type { Kube } from '../kube/client.js';
import type { TrafficPolicy } from '../src/resources/schema.js';
import { type CliIO, EXIT_OK } from './io.js';
import {
  invalid,
  type KubeCliOptions,
  kubeFromCli,
  noPolicy,
  patchPolicySpec,
  printTable,
  readPolicy,
} from './kube-cli.js';

type Intercept = NonNullable<TrafficPolicy['spec']['intercepts']>[number];

export interface InterceptAddOptions extends Omit<KubeCliOptions, 'output'> {
  header?: string;
  baggage?: string;
  exact?: string;
  prefix?: string;
  regex?: string;
  toVersion?: string;
  toPreview?: string;
  requireToken?: boolean;
}

function exactlyOne(io: CliIO, what: string, values: Record<string, unknown>): string | number {
  const given = Object.entries(values).filter(([, v]) => v !== undefined);
  if (given.length !== 1)
    return invalid(
      io,
      `give exactly one of ${Object.keys(values).join(', ')} (${what}); got ${given.length}`,
    );
  return (given[0] as [string, unknown])[0];
}

export async function interceptAddCommand(
  policyName: string,
  name: string,
  opts: InterceptAddOptions,
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
): Promise<number> {
  const on = exactlyOne(io, 'what to match', { '--header': opts.header, '--baggage': opts.baggage });
  if (typeof on === 'number') return on;
  const how = exactlyOne(io, 'how to match', {
    '--exact': opts.exact,
    '--prefix': opts.prefix,
    '--regex': opts.regex,
  });
  if (typeof how === 'number') return how;
  const to = exactlyOne(io, 'where to send', {
    '--to-version': opts.toVersion,
    '--to-preview': opts.toPreview,
  });
  if (typeof to === 'number') return to;
  const policy = await readPolicy(kube, opts.namespace, policyName);
  if (!policy) return noPolicy(io, opts.namespace, policyName);
  const existing = policy.spec.intercepts ?? [];
  if (existing.some((i) => i.name === name))
    return invalid(
      io,
      `TrafficPolicy ${opts.namespace}/${policyName} already has an intercept ${name}: remove it first`,
    );
  const intercept = {
    name,
    match: {
      ...(opts.header !== undefined ? { header: opts.header } : { baggage: opts.baggage }),
      ...(opts.exact !== undefined ? { exact: opts.exact } : {}),
      ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
      ...(opts.regex !== undefined ? { regex: opts.regex } : {}),
    },
    to: opts.toVersion !== undefined ? { version: opts.toVersion } : { preview: opts.toPreview },
    ...(opts.requireToken ? { requireToken: true } : {}),
  } as Intercept;
  const failed = await patchPolicySpec(kube, policy, { intercepts: [...existing, intercept] }, io);
  if (failed !== undefined) return failed;
  io.stdout(`${opts.namespace}/${policyName}: intercept ${name} added (${describeIntercept(intercept)})\n`);
  return EXIT_OK;
}

export async function interceptRemoveCommand(
  policyName: string,
  name: string,
  opts: Omit<KubeCliOptions, 'output'>,
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
): Promise<number> {
  const policy = await readPolicy(kube, opts.namespace, policyName);
  if (!policy) return noPolicy(io, opts.namespace, policyName);
  const existing = policy.spec.intercepts ?? [];
  if (!existing.some((i) => i.name === name))
    return invalid(
      io,
      `TrafficPolicy ${opts.namespace}/${policyName} has no intercept ${name} (it has: ${existing.map((i) => i.name).join(', ') || 'none'})`,
    );
  const rest = existing.filter((i) => i.name !== name);
  const failed = await patchPolicySpec(kube, policy, { intercepts: rest.length > 0 ? rest : null }, io);
  if (failed !== undefined) return failed;
  io.stdout(`${opts.namespace}/${policyName}: intercept ${name} removed\n`);
  return EXIT_OK;
}

/** `header x-user = alice -> v3`, `baggage tenant ~ beta-.* -> preview pr-42 (token)`. */
export function describeIntercept(i: Intercept): string {
  const on = i.match.header !== undefined ? `header ${i.match.header}` : `baggage ${i.match.baggage}`;
  const how =
    i.match.exact !== undefined
      ? `= ${i.match.exact}`
      : i.match.prefix !== undefined
        ? `starts with ${i.match.prefix}`
        : `~ ${i.match.regex}`;
  const to = i.to.version !== undefined ? i.to.version : `preview ${i.to.preview}`;
  return `${on} ${how} -> ${to}${i.requireToken ? ' (token)' : ''}`;
}

export async function interceptListCommand(
  policyName: string,
  opts: KubeCliOptions,
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
): Promise<number> {
  const policy = await readPolicy(kube, opts.namespace, policyName);
  if (!policy) return noPolicy(io, opts.namespace, policyName);
  const intercepts = policy.spec.intercepts ?? [];
  printTable(
    io,
    opts.output,
    intercepts,
    ['NAME', 'MATCH', 'TO', 'TOKEN'],
    intercepts.map((i) => {
      const [match, to] = describeIntercept({ ...i, requireToken: false }).split(' -> ') as [string, string];
      return [i.name, match, to, i.requireToken ? 'required' : '-'];
    }),
  );
  return EXIT_OK;
}
