/**
 * What the release engineer's commands share: the kubeconfig, reading a TrafficPolicy with a clear
 * error when it is missing, and changing one with a JSON merge patch that carries the
 * resourceVersion it read (a concurrent change fails with a conflict instead of being overwritten)
 * after validating the result as `switchyard validate` would.
 */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { formatProblem, problem } from '../core/common/errors.js';
import { API_VERSION, type TrafficPolicy } from '../core/resources/schema.js';
import { readResources } from '../core/resources/validate.js';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../kube/client.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';

export interface KubeCliOptions {
  namespace: string;
  kubeconfig?: string;
  output: string;
}

/** A command on one named object: `switchyard canary promote NAME -n NS`. */
export type NamedCommand<O = Omit<KubeCliOptions, 'output'>> = (
  name: string,
  opts: O,
  io: CliIO,
  kube?: Kube,
) => Promise<number>;

/** A command on one named object with one more argument: `switchyard canary set NAME WEIGHT`. */
export type NamedArgCommand<O = Omit<KubeCliOptions, 'output'>> = (
  name: string,
  arg: string,
  opts: O,
  io: CliIO,
  kube?: Kube,
) => Promise<number>;

/** A command on one named object that prints it (`-o text|json|yaml`). */
export type ShowCommand = NamedCommand<KubeCliOptions>;

export function kubeFromCli(opts: { kubeconfig?: string }): Kube {
  return clientNodeKube(kubeConfigFrom(opts.kubeconfig ? readFileSync(opts.kubeconfig, 'utf8') : undefined));
}

export function invalid(io: CliIO, message: string): number {
  io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', message))}\n`);
  return EXIT_INVALID;
}

export type LivePolicy = Omit<TrafficPolicy, 'metadata' | 'status'> & {
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
  status?: {
    conditions?: { type: string; status: string; reason: string; message: string }[];
    backend?: string;
  };
};

export async function readPolicy(
  kube: Kube,
  namespace: string,
  name: string,
): Promise<LivePolicy | undefined> {
  return kube.get<LivePolicy>({ apiVersion: API_VERSION, kind: 'TrafficPolicy', namespace, name });
}

export function noPolicy(io: CliIO, namespace: string, name: string): number {
  return invalid(
    io,
    `no TrafficPolicy ${namespace}/${name} (list them with: switchyard status -n ${namespace})`,
  );
}

/**
 * Applies `spec` changes (null removes a field) to the policy as read, after checking that the
 * result is a valid policy; returns an exit code when it is not.
 */
export async function patchPolicySpec(
  kube: Kube,
  live: LivePolicy,
  changes: Record<string, unknown>,
  io: CliIO,
): Promise<number | undefined> {
  const spec = applyMergePatch(live.spec, changes);
  const name = live.metadata.name;
  const namespace = live.metadata.namespace as string;
  const { problems } = readResources([
    {
      source: { file: `${namespace}/${name}`, document: 1 },
      value: { apiVersion: API_VERSION, kind: 'TrafficPolicy', metadata: { name, namespace }, spec },
    },
  ]);
  if (problems.length > 0) {
    for (const p of problems) io.stderr(`${formatProblem(p)}\n`);
    io.stderr('nothing was changed\n');
    return EXIT_INVALID;
  }
  await kube.mergePatch(
    { apiVersion: API_VERSION, kind: 'TrafficPolicy', namespace, name },
    { metadata: { resourceVersion: live.metadata.resourceVersion }, spec: changes },
  );
  return undefined;
}

/** What a change to a policy is: the spec patch and the line printed once it is written, or why not. */
export type PolicyChange = { patch: Record<string, unknown>; done: string } | { refused: string };

/**
 * Reads the policy, asks `change` what to do with it, and writes that (patchPolicySpec): the steps
 * every command that edits a policy takes, each with its error for a person.
 */
export async function changePolicy(
  kube: Kube,
  at: { namespace: string; name: string },
  io: CliIO,
  change: (policy: LivePolicy) => PolicyChange,
): Promise<number> {
  const policy = await readPolicy(kube, at.namespace, at.name);
  if (!policy) return noPolicy(io, at.namespace, at.name);
  const c = change(policy);
  if ('refused' in c) return invalid(io, c.refused);
  const failed = await patchPolicySpec(kube, policy, c.patch, io);
  if (failed !== undefined) return failed;
  io.stdout(`${at.namespace}/${at.name}: ${c.done}\n`);
  return EXIT_OK;
}

/** RFC 7386, as the API server applies it: null removes, objects merge, everything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

/** Prints rows as an aligned table, or the data as JSON/YAML. */
export function printTable(
  io: CliIO,
  output: string,
  data: unknown,
  header: string[],
  rows: string[][],
): void {
  if (output === 'json' || output === 'yaml') {
    io.stdout(output === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data));
    return;
  }
  io.stdout(`${alignedRows(header, rows).join('\n')}\n`);
}

/** The header and rows as lines of columns two spaces apart. */
export function alignedRows(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** `5m`, `3h`, `2d`: how long ago, as kubectl prints ages. */
export function age(from: string | Date | undefined, now: Date): string {
  if (!from) return '-';
  const s = Math.max(0, Math.floor((now.getTime() - new Date(from).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
