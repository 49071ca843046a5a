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
import type { Logger } from '../src/core/logger.js';

export interface WatchSpec {
  apiVersion: string;
  kind: string;
  plural: string;
  /** Undefined: all namespaces. */
  namespace?: string | undefined;
  labelSelector?: string;
}

export type ObjectInformer<T extends KubernetesObject> = Informer<T> &
  ObjectCache<T> & {
    /** True once a list has succeeded: before that the cache is empty, not authoritative. */
    synced(): boolean;
  };

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
        return result;
      }) as never;
  const informer = makeInformer<T>(kubeconfig, path, list, spec.labelSelector);
  for (const event of ['add', 'update', 'delete'] as const) informer.on(event, (o) => onObject(o, event));
  // A failed restart is reported as another error, or rejects: both retry.
  let restarting = false;
  const restart = (err: unknown) => {
    if (isStopped() || restarting) return;
    restarting = true;
    logger.warn({ path, err: String((err as Error)?.message ?? err) }, 'watch failed; re-listing in 1 s');
    setTimeout(() => {
      restarting = false;
      if (!isStopped()) informer.start().catch(restart);
    }, 1000);
  };
  informer.on('error', restart);
  return Object.assign(informer, { synced: () => synced });
}
