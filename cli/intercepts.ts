import type { TrafficPolicy } from '../core/resources/schema.js';
import { type CliIO, EXIT_OK } from './io.js';
import {
  changePolicy,
  invalid,
  type KubeCliOptions,
  kubeFromCli,
  type NamedArgCommand,
  noPolicy,
  printTable,
  readPolicy,
  type ShowCommand,
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

export const interceptAddCommand: NamedArgCommand<InterceptAddOptions> = async (
  policyName,
  name,
  opts,
  io,
  kube = kubeFromCli(opts),
) => {
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
  return changePolicy(kube, { namespace: opts.namespace, name: policyName }, io, (policy) => {
    const existing = policy.spec.intercepts ?? [];
    if (existing.some((i) => i.name === name))
      return {
        refused: `TrafficPolicy ${opts.namespace}/${policyName} already has an intercept ${name}: remove it first`,
      };
    return {
      patch: { intercepts: [...existing, intercept] },
      done: `intercept ${name} added (${describeIntercept(intercept)})`,
    };
  });
};

export const interceptRemoveCommand: NamedArgCommand = (
  policyName,
  name,
  opts,
  io,
  kube = kubeFromCli(opts),
) =>
  changePolicy(kube, { namespace: opts.namespace, name: policyName }, io, (policy) => {
    const existing = policy.spec.intercepts ?? [];
    if (!existing.some((i) => i.name === name))
      return {
        refused: `TrafficPolicy ${opts.namespace}/${policyName} has no intercept ${name} (it has: ${existing.map((i) => i.name).join(', ') || 'none'})`,
      };
    const rest = existing.filter((i) => i.name !== name);
    return { patch: { intercepts: rest.length > 0 ? rest : null }, done: `intercept ${name} removed` };
  });

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

export const interceptListCommand: ShowCommand = async (policyName, opts, io, kube = kubeFromCli(opts)) => {
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
};
