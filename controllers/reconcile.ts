/** What every reconciler shares: its signature, and the clock and Event recorder it is handed. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Kube } from '../kube/client.js';
import { type EventRecorder, NO_EVENTS } from '../kube/events.js';

export interface ReconcileContext {
  events?: EventRecorder;
  now?: () => Date;
}

/** Brings the object `namespace/name` to what it asks for; undefined when it no longer exists. */
export type Reconciler<O extends ReconcileContext, R> = (
  kube: Kube,
  namespace: string,
  name: string,
  options?: O,
) => Promise<R | undefined>;

/**
 * A Reconciler of one kind: reads the object (from the cache), and hands it to `reconcile` with the
 * context's defaults filled in; an object that is gone needs nothing (owner references and
 * finalizers took care of it).
 */
export function reconcilerOf<T extends KubernetesObject, O extends ReconcileContext, R>(
  kind: { apiVersion: string; kind: string },
  reconcile: (
    kube: Kube,
    live: T,
    at: { namespace: string; name: string },
    options: O & Required<ReconcileContext>,
  ) => Promise<R>,
): Reconciler<O, R> {
  return async (kube, namespace, name, options = {} as O) => {
    const live = await kube.get<T>({ apiVersion: kind.apiVersion, kind: kind.kind, namespace, name });
    if (!live) return undefined;
    return reconcile(
      kube,
      live,
      { namespace, name },
      {
        ...options,
        events: options.events ?? NO_EVENTS,
        now: options.now ?? (() => new Date()),
      },
    );
  };
}
