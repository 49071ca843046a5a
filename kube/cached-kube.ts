/**
 * Reads from the informers' caches, writes to the API server: what controller-runtime's client does.
 * A reconcile then costs its writes, not a dozen GETs and LISTs. A `get` the cache cannot answer
 * (a kind not watched, or an object outside an informer's label selector) goes to the API server;
 * a `list` is answered by the cache only when the informer's selector is part of the one asked for.
 * A cache that has not listed yet (its first list failed and is being retried) answers nothing.
 * Cached objects may lag a write by a moment: a stale read at worst re-applies an unchanged
 * object or loses a status write with 409, retried; the watch event that follows re-queues.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Kube } from './client.js';
import type { ObjectInformer } from './informer.js';

interface Cache {
  informer: ObjectInformer<KubernetesObject>;
  namespace: string | undefined;
  selector: string[];
}

const terms = (selector: string | undefined) => (selector ? selector.split(',').map((t) => t.trim()) : []);

const writtenKey = (ref: { apiVersion: string; kind: string; namespace?: string; name: string }) =>
  `${ref.apiVersion}/${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;

/** etcd revisions: larger is newer (the API server does not promise it; etcd gives it). */
const resourceVersion = (o: KubernetesObject) => Number(o.metadata?.resourceVersion ?? 0);

function matches(o: KubernetesObject, selector: string[]): boolean {
  const labels = o.metadata?.labels ?? {};
  return selector.every((t) => {
    const [k, v] = t.split('=') as [string, string | undefined];
    return v === undefined ? k in labels : labels[k] === v;
  });
}

export class CachedKube implements Kube {
  private readonly caches = new Map<string, Cache[]>();
  /**
   * What this controller applied, until the cache has caught up with it (read-your-writes): without
   * it, a reconcile right after a write could see the old object and write, or count a foreign edit
   * it already reverted, twice.
   */
  private readonly written = new Map<string, KubernetesObject>();

  constructor(private readonly live: Kube) {}

  /** Registers an informer as the cache of `apiVersion/kind` in `namespace` (undefined: all). */
  register(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    informer: ObjectInformer<KubernetesObject>,
    labelSelector?: string,
  ): void {
    const key = `${apiVersion}/${kind}`;
    this.caches.set(key, [
      ...(this.caches.get(key) ?? []),
      { informer, namespace, selector: terms(labelSelector) },
    ]);
  }

  private cachesFor(apiVersion: string, kind: string, namespace: string | undefined): Cache[] {
    return (this.caches.get(`${apiVersion}/${kind}`) ?? []).filter(
      (c) => (c.namespace === undefined || c.namespace === namespace) && c.informer.synced(),
    );
  }

  async get<T extends KubernetesObject>(ref: Parameters<Kube['get']>[0]): Promise<T | undefined> {
    const key = writtenKey(ref);
    const mine = this.written.get(key);
    for (const c of this.cachesFor(ref.apiVersion, ref.kind, ref.namespace)) {
      const hit = c.informer.get(ref.name, ref.namespace);
      if (mine && (!hit || resourceVersion(hit) < resourceVersion(mine))) return mine as T;
      if (mine) this.written.delete(key);
      if (hit) return hit as T;
      // A full cache, or one whose selector the object would match: it does not exist.
      if (c.selector.length === 0) return undefined;
      if (ref.labels && matches({ metadata: { labels: ref.labels } }, c.selector)) return undefined;
    }
    const { labels: _hint, ...plain } = ref;
    return this.live.get<T>(plain);
  }

  async list<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
  ): Promise<T[]> {
    const wanted = terms(labelSelector);
    // The informer's selector must be implied by the one asked for (`k=v` implies `k`).
    const fits = (c: Cache) => c.selector.every((t) => wanted.some((w) => w === t || w.startsWith(`${t}=`)));
    if (namespace === undefined) {
      // Every namespace watched: the union of the per-namespace caches (a controller given -n
      // knows those namespaces only), once each has listed.
      const all = (this.caches.get(`${apiVersion}/${kind}`) ?? []).filter(fits);
      if (all.length > 0 && all.every((c) => c.informer.synced()))
        return all.flatMap((c) => c.informer.list()).filter((o) => matches(o, wanted)) as T[];
    }
    const cache = this.cachesFor(apiVersion, kind, namespace).find(fits);
    if (!cache || (namespace === undefined && cache.namespace !== undefined))
      return this.live.list<T>(apiVersion, kind, namespace, labelSelector);
    return cache.informer.list(namespace).filter((o) => matches(o, wanted)) as T[];
  }

  async apply<T extends KubernetesObject>(
    obj: KubernetesObject,
    fieldManager: string,
    force: boolean,
  ): Promise<T> {
    const result = await this.live.apply<T>(obj, fieldManager, force);
    this.remember(obj, result);
    return result;
  }
  async delete(ref: Parameters<Kube['delete']>[0]): Promise<void> {
    this.written.delete(writtenKey(ref));
    await this.live.delete(ref);
  }
  create<T extends KubernetesObject>(obj: KubernetesObject): Promise<T> {
    return this.live.create<T>(obj);
  }
  mergePatch<T extends KubernetesObject>(
    ref: Parameters<Kube['mergePatch']>[0],
    patch: Record<string, unknown>,
  ) {
    return this.live.mergePatch<T>(ref, patch);
  }
  replace<T extends KubernetesObject>(obj: KubernetesObject): Promise<T> {
    return this.live.replace<T>(obj);
  }
  async replaceStatus(...args: Parameters<Kube['replaceStatus']>): Promise<KubernetesObject> {
    const result = await this.live.replaceStatus(...args);
    this.remember(args[3], result);
    return result;
  }

  /** Our write, until the cache has caught up with it. */
  private remember(sent: KubernetesObject, result: KubernetesObject | undefined): void {
    if (!result?.metadata?.name || !this.caches.has(`${sent.apiVersion}/${sent.kind}`)) return;
    this.written.set(
      writtenKey({
        apiVersion: sent.apiVersion as string,
        kind: sent.kind as string,
        name: result.metadata.name,
        ...(result.metadata.namespace ? { namespace: result.metadata.namespace } : {}),
      }),
      { ...result, apiVersion: sent.apiVersion, kind: sent.kind } as KubernetesObject,
    );
  }
}
