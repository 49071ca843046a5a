/**
 * `switchyard status`: every TrafficPolicy of a namespace at a glance: stable, canary and weight,
 * intercepts, previews with phase and URL, and the conditions the controller reported.
 */

import { stringify } from 'yaml';
import { sha7 } from '../core/compiler/names.js';
import { API_VERSION } from '../core/resources/schema.js';
import type { Kube } from '../kube/client.js';
import { describeIntercept } from './intercepts.js';
import { type CliIO, EXIT_OK } from './io.js';
import { type KubeCliOptions, kubeFromCli, type LivePolicy } from './kube-cli.js';
import { listPreviews, type PreviewRow } from './previews.js';

export interface PolicyStatus {
  policy: string;
  stable: string;
  canary: { version: string; weight: number; sticky: boolean } | null;
  intercepts: string[];
  previews: Pick<PreviewRow, 'name' | 'pullRequest' | 'commit' | 'phase' | 'url'>[];
  conditions: { type: string; status: string; reason: string; message: string }[];
}

export async function policyStatuses(kube: Kube, namespace: string): Promise<PolicyStatus[]> {
  const policies = await kube.list<LivePolicy & { apiVersion: string }>(
    API_VERSION,
    'TrafficPolicy',
    namespace,
  );
  const previews = await listPreviews(kube, namespace);
  return policies
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((p) => ({
      policy: `${namespace}/${p.metadata.name}`,
      stable: p.spec.stable,
      canary: p.spec.canary
        ? {
            version: p.spec.canary.version,
            weight: p.spec.canary.weight ?? 0,
            sticky: Boolean(p.spec.canary.sticky),
          }
        : null,
      intercepts: (p.spec.intercepts ?? []).map((i) => `${i.name}: ${describeIntercept(i)}`),
      previews: previews
        .filter((r) => r.policy === p.metadata.name)
        .map(({ name, pullRequest, commit, phase, url }) => ({ name, pullRequest, commit, phase, url })),
      conditions: (p.status?.conditions ?? []).map(({ type, status, reason, message }) => ({
        type,
        status,
        reason,
        message,
      })),
    }));
}

export async function statusCommand(
  opts: KubeCliOptions,
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
): Promise<number> {
  const statuses = await policyStatuses(kube, opts.namespace);
  if (opts.output === 'json') io.stdout(`${JSON.stringify(statuses, null, 2)}\n`);
  else if (opts.output === 'yaml') io.stdout(stringify(statuses));
  else if (statuses.length === 0) io.stdout(`no TrafficPolicies in namespace ${opts.namespace}\n`);
  else {
    const blocks = statuses.map((s) => {
      const ready = s.conditions.find((c) => c.type === 'Ready');
      const lines = [
        `${s.policy}  ${ready ? `Ready=${ready.status} (${ready.reason})` : 'not reconciled yet'}`,
        `  stable:      ${s.stable}`,
        `  canary:      ${s.canary ? `${s.canary.version} at ${s.canary.weight}%${s.canary.sticky ? ', sticky' : ''}` : '(none)'}`,
        `  intercepts:  ${s.intercepts.length === 0 ? '(none)' : s.intercepts.join('\n               ')}`,
        `  previews:    ${
          s.previews.length === 0
            ? '(none)'
            : s.previews
                .map((p) => `#${p.pullRequest} ${sha7(p.commit)} ${p.phase}${p.url ? ` ${p.url}` : ''}`)
                .join('\n               ')
        }`,
        ...s.conditions.map((c) => `  ${`${c.type}:`.padEnd(12)} ${c.status} (${c.reason}) ${c.message}`),
      ];
      return lines.join('\n');
    });
    io.stdout(`${blocks.join('\n\n')}\n`);
  }
  return EXIT_OK;
}
