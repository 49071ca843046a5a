/**
 * Writing an owned object: server-side apply with Switchyard's field manager, only when something
 * differs, and telling apart our own change from a foreign edit. The object carries the hash of
 * what was last applied (`switchyard.dev/applied-hash`): when the live object no longer matches a
 * desired state whose hash it still carries, someone else edited it. That edit is reverted (the
 * apply is forced) and reported as `reverted`, so it is counted and shown as an Event rather than
 * fought over silently.
 *
 * Ownership: an object is written only when it does not exist yet or its controller owner
 * reference names the same owner (kind and name; a predecessor of the same name counts, as the
 * garbage collector would have removed it had it been foreign). Anything else of that name (a
 * Service a team wrote, another Preview's Deployment) is never forced over: `NameTakenError`, which
 * the reconcilers turn into a `NameTaken` condition naming the object. Without this a Preview
 * named like a production Service took that Service over and deleted it with the Preview.
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { APPLIED_HASH } from '../core/resources/labels.js';
import type { Kube } from './client.js';

export const FIELD_MANAGER = 'switchyard';

export type ApplyOutcome = 'unchanged' | 'created' | 'updated' | 'reverted';

type Obj = KubernetesObject & { spec?: unknown; [field: string]: unknown };

/** An object of the wanted name exists and belongs to someone else. */
export class NameTakenError extends Error {
  readonly code = 'NameTaken';
  constructor(readonly object: string) {
    super(`${object} already exists and was not created by Switchyard for this owner; it is left untouched`);
  }
}

function controllerOf(o: KubernetesObject) {
  return o.metadata?.ownerReferences?.find((r) => r.controller);
}

/**
 * Whether `live` is ours to write for `desired`'s owner: its controller reference names the same
 * kind and name. Objects without an owner in `desired` (none today) are not checked.
 */
export function ownedLike(live: KubernetesObject, desired: KubernetesObject): boolean {
  const want = controllerOf(desired);
  if (!want) return true;
  const have = controllerOf(live);
  const group = (apiVersion: string) => apiVersion.split('/').slice(0, -1).join('/');
  return (
    have !== undefined &&
    have.kind === want.kind &&
    have.name === want.name &&
    group(have.apiVersion) === group(want.apiVersion)
  );
}

function describeObject(o: KubernetesObject): string {
  return `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
}

/** The live object of `desired`'s name, asked for without a label hint so a foreign one is seen. */
async function liveOf(kube: Kube, desired: KubernetesObject, hinted: boolean): Promise<Obj | undefined> {
  return kube.get<Obj>({
    apiVersion: desired.apiVersion as string,
    kind: desired.kind as string,
    name: desired.metadata?.name as string,
    ...(hinted && desired.metadata?.labels ? { labels: desired.metadata.labels } : {}),
    ...(desired.metadata?.namespace ? { namespace: desired.metadata.namespace } : {}),
  });
}

/** The objects among `desired` whose name is taken by something Switchyard must not write over. */
export async function takenNames(kube: Kube, desired: readonly KubernetesObject[]): Promise<string[]> {
  const live = await Promise.all(desired.map((d) => liveOf(kube, d, false)));
  return desired.flatMap((d, i) => {
    const l = live[i];
    return l && !ownedLike(l, d) ? [describeObject(l)] : [];
  });
}

export function appliedHash(obj: KubernetesObject): string {
  const { metadata, ...rest } = obj as Obj;
  const { annotations, ...meta } = metadata ?? {};
  const ours = Object.fromEntries(Object.entries(annotations ?? {}).filter(([k]) => k !== APPLIED_HASH));
  return createHash('sha256')
    .update(JSON.stringify({ ...rest, metadata: { ...meta, annotations: ours } }))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Whether `live` holds everything `wanted` says. With `exact`, arrays and objects must match
 * key for key (Istio's CRDs default nothing); without it, fields the API server defaults (a
 * Service's clusterIP, a port's protocol) may be extra and empty ones may be missing.
 */
export function covers(wanted: unknown, live: unknown, exact: boolean): boolean {
  // Built-in kinds drop empty lists and maps (Go's omitempty): `env: []` is stored as no env.
  if (!exact && live === undefined && isEmpty(wanted)) return true;
  if (Array.isArray(wanted)) {
    return (
      Array.isArray(live) &&
      live.length === wanted.length &&
      wanted.every((w, i) => covers(w, live[i], exact))
    );
  }
  if (wanted && typeof wanted === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) return false;
    const l = live as Record<string, unknown>;
    const w = wanted as Record<string, unknown>;
    if (exact && Object.keys(l).some((k) => !(k in w))) return false;
    return Object.entries(w).every(([k, v]) => covers(v, l[k], exact));
  }
  return wanted === live;
}

function isEmpty(v: unknown): boolean {
  return Array.isArray(v) ? v.length === 0 : !!v && typeof v === 'object' && Object.keys(v).length === 0;
}

function metadataCovers(wanted: KubernetesObject, live: KubernetesObject): boolean {
  return (
    covers(wanted.metadata?.labels ?? {}, live.metadata?.labels ?? {}, false) &&
    covers(wanted.metadata?.annotations ?? {}, live.metadata?.annotations ?? {}, false) &&
    covers(
      (wanted.metadata?.ownerReferences ?? []).map((o) => o.uid),
      (live.metadata?.ownerReferences ?? []).map((o) => o.uid),
      false,
    )
  );
}

/** Applies `desired` unless the live object already is what it says; reports what happened. */
export async function applyOwned(
  kube: Kube,
  desired: KubernetesObject,
  options: { exact: boolean },
): Promise<ApplyOutcome> {
  const hash = appliedHash(desired);
  const stamped = {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata?.annotations, [APPLIED_HASH]: hash },
    },
  } as KubernetesObject;
  // The label hint lets a cache of Switchyard's objects answer "not found" without a request;
  // before a create, the name is looked up for anyone's object.
  const live = (await liveOf(kube, desired, true)) ?? (await liveOf(kube, desired, false));
  if (live && !ownedLike(live, desired)) throw new NameTakenError(describeObject(live));
  if (!live) {
    await kube.apply(stamped, FIELD_MANAGER, true);
    return 'created';
  }
  const same =
    metadataCovers(stamped, live) &&
    Object.entries(desired as Obj)
      .filter(([k]) => !['apiVersion', 'kind', 'metadata', 'status'].includes(k))
      .every(([k, v]) => covers(v, live[k], options.exact));
  if (same) return 'unchanged';
  await kube.apply(stamped, FIELD_MANAGER, true);
  return live.metadata?.annotations?.[APPLIED_HASH] === hash ? 'reverted' : 'updated';
}
