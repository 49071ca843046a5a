/** `switchyard preview list|delete`: the running previews, as the PR bot and the controller see them. */

import type { KubernetesObject } from '@kubernetes/client-node';
import { sha7 } from '../core/compiler/names.js';
import { API_VERSION, type Preview } from '../core/resources/schema.js';
import type { Kube } from '../kube/client.js';
import { type CliIO, EXIT_OK } from './io.js';
import { age, invalid, type KubeCliOptions, kubeFromCli, type NamedCommand, printTable } from './kube-cli.js';

type LivePreview = Preview & KubernetesObject;

export interface PreviewRow {
  namespace: string;
  name: string;
  policy: string;
  repository: string;
  pullRequest: number;
  commit: string;
  phase: string;
  url: string | null;
  createdAt: string | null;
}

export async function listPreviews(
  kube: Kube,
  namespace: string | undefined,
  policy?: string,
): Promise<PreviewRow[]> {
  const items = await kube.list<LivePreview>(API_VERSION, 'Preview', namespace);
  return items
    .filter((p) => !policy || p.spec.policy === policy)
    .map((p) => ({
      namespace: p.metadata?.namespace as string,
      name: p.metadata?.name as string,
      policy: p.spec.policy,
      repository: p.spec.repository,
      pullRequest: p.spec.pullRequest,
      commit: p.spec.commit,
      phase: p.metadata?.deletionTimestamp ? 'Deleting' : (p.status?.phase ?? 'Pending'),
      url: p.status?.url ?? null,
      createdAt: p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).toISOString() : null,
    }))
    .sort(
      (a, b) =>
        a.namespace.localeCompare(b.namespace) ||
        a.repository.localeCompare(b.repository) ||
        a.pullRequest - b.pullRequest ||
        (a.createdAt ?? '').localeCompare(b.createdAt ?? ''),
    );
}

export async function previewListCommand(
  opts: KubeCliOptions & { allNamespaces?: boolean; policy?: string },
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
  now: Date = new Date(),
): Promise<number> {
  const rows = await listPreviews(kube, opts.allNamespaces ? undefined : opts.namespace, opts.policy);
  printTable(
    io,
    opts.output,
    rows,
    ['NAMESPACE', 'NAME', 'REPOSITORY', 'PR', 'SHA', 'PHASE', 'URL', 'AGE'],
    rows.map((r) => [
      r.namespace,
      r.name,
      r.repository,
      `#${r.pullRequest}`,
      sha7(r.commit),
      r.phase,
      r.url ?? '-',
      age(r.createdAt ?? undefined, now),
    ]),
  );
  return EXIT_OK;
}

export const previewDeleteCommand: NamedCommand = async (name, opts, io, kube = kubeFromCli(opts)) => {
  const ref = { apiVersion: API_VERSION, kind: 'Preview', namespace: opts.namespace, name };
  if (!(await kube.get(ref)))
    return invalid(
      io,
      `no Preview ${opts.namespace}/${name} (list them with: switchyard preview list -n ${opts.namespace})`,
    );
  await kube.delete(ref);
  io.stdout(
    `${opts.namespace}/${name}: deleted; the controller removes its routes, then its Deployment and Service\n`,
  );
  return EXIT_OK;
};
