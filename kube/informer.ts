/**
 * One informer (list + watch with resourceVersion, re-list on 410 Gone: client-node's) per kind and
 * namespace, whose broken watches are restarted until they hold again: an API server restart, a
 * network cut. Shared by the controller and `switchyard gateway --kube`.
 */
import {
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  makeInformer,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from '../core/common/logger.js';

export interface WatchSpec {
  apiVersion: string;
  kind: string;
  plural: string;
  /** Undefined: all namespaces. */
  namespace?: string | undefined;
  labelSelector?: string;
  /** What to do when the cluster does not serve the kind (e.g. which mode needs its CRD). */
  missingHint?: string;
}

export type ObjectInformer<T extends KubernetesObject> = Informer<T> &
  ObjectCache<T> & {
    /** True once a list has succeeded: before that the cache is empty, not authoritative. */
    synced(): boolean;
    /** Why the last list or watch failed, for a person; undefined while it holds. */
    failure(): string | undefined;
    /** The API path watched, e.g. /apis/apps/v1/namespaces/shop/deployments. */
    readonly path: string;
  };

/**
 * Why a list or watch failed, said so a person can act: a kind the cluster does not serve (a CRD
 * not installed) and a refusal (RBAC) name the fix; anything else is the API server's message.
 */
export function watchFailureReason(spec: WatchSpec, err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  const message = String((err as Error | undefined)?.message ?? err).split('\n')[0] as string;
  const where = spec.namespace ? `in namespace ${spec.namespace}` : 'in all namespaces';
  if (code === 404 || message.startsWith('Unrecognized API version and kind'))
    return `the cluster does not serve ${spec.apiVersion} ${spec.kind} (is its CustomResourceDefinition installed?)${spec.missingHint ? `: ${spec.missingHint}` : ''}`;
  if (code === 403)
    return `forbidden to list and watch ${spec.plural} ${where}: the ServiceAccount's RBAC does not allow it (a namespace not given to the install?)`;
  return message;
}

export function watchObjects<T extends KubernetesObject>(
  kubeconfig: KubeConfig,
  spec: WatchSpec,
  logger: Logger,
  onObject: (o: T, event: 'add' | 'update' | 'delete') => void,
  isStopped: () => boolean,
): ObjectInformer<T> {
  const objects = KubernetesObjectApi.makeApiClient(kubeconfig);
  const base = spec.apiVersion.includes('/') ? `/apis/${spec.apiVersion}` : `/api/${spec.apiVersion}`;
  const path = `${base}${spec.namespace ? `/namespaces/${spec.namespace}` : ''}/${spec.plural}`;
  let synced = false;
  let failure: string | undefined;
  const list = () =>
    objects
      .list(
        spec.apiVersion,
        spec.kind,
        spec.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        spec.labelSelector,
      )
      .then((result) => {
        synced = true;
        failure = undefined;
        return result;
      }) as never;
  const informer = makeInformer<T>(kubeconfig, path, list, spec.labelSelector);
  for (const event of ['add', 'update', 'delete'] as const) informer.on(event, (o) => onObject(o, event));
  // A failed restart is reported as another error, or rejects: both retry. The same reason is
  // logged once a minute (a missing CRD would otherwise log a line every second, for ever).
  let restarting = false;
  let logged = { reason: '', at: 0 };
  const restart = (err: unknown) => {
    if (isStopped() || restarting) return;
    restarting = true;
    failure = watchFailureReason(spec, err);
    if (failure !== logged.reason || Date.now() - logged.at > 60_000) {
      logger.warn({ path, reason: failure }, 'watch failed; retrying every second');
      logged = { reason: failure, at: Date.now() };
    }
    setTimeout(() => {
      restarting = false;
      if (!isStopped()) informer.start().catch(restart);
    }, 1000);
  };
  informer.on('error', restart);
  return Object.assign(informer, { synced: () => synced, failure: () => failure, path });
}
