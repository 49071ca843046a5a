/**
 * The controller's only way to Kubernetes: a small interface, so the reconcilers run unchanged
 * against a real cluster and the tests' real (envtest) API server. `clientNodeKube` implements it
 * on @kubernetes/client-node (1.x: 2.x does not load on Node 20).
 */
import {
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from '@kubernetes/client-node';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  /**
   * Labels the object carries if it exists (it is one Switchyard writes): a cache that holds only
   * objects with such labels may then answer "not found" without asking the API server.
   */
  labels?: Record<string, string>;
}

export interface Kube {
  /** The object, or undefined when it does not exist. */
  get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
  ): Promise<T[]>;
  /** Server-side apply with one field manager; `force` takes over fields another manager set. */
  apply<T extends KubernetesObject>(obj: KubernetesObject, fieldManager: string, force: boolean): Promise<T>;
  delete(ref: ObjectRef): Promise<void>;
  create<T extends KubernetesObject>(obj: KubernetesObject): Promise<T>;
  /**
   * JSON merge patch (RFC 7386: null removes a field, arrays are replaced); with
   * metadata.resourceVersion in the patch it fails with 409 if the object changed since read.
   */
  mergePatch<T extends KubernetesObject>(ref: ObjectRef, patch: Record<string, unknown>): Promise<T>;
  /** Update with the resourceVersion the object carries (409 when someone wrote in between). */
  replace<T extends KubernetesObject>(obj: KubernetesObject): Promise<T>;
  /** Replaces the status subresource of a custom object (optimistic: 409 on a stale resourceVersion). */
  replaceStatus(
    group: string,
    version: string,
    plural: string,
    obj: KubernetesObject,
  ): Promise<KubernetesObject>;
}

/**
 * What the API server said, from a client-node error: its Status `message` (`namespaces "x" not
 * found`, `Deployment.apps "x" is invalid: …`), else the error's own message.
 */
export function apiErrorMessage(e: unknown): string {
  const err = e as { body?: unknown; message?: string };
  try {
    const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    const message = (body as { message?: unknown } | undefined)?.message;
    if (typeof message === 'string') return message;
  } catch {
    // not a Status body
  }
  return err.message ?? String(e);
}

/** 422 (Invalid) or 400 (BadRequest): the same write will be refused again, whatever the wait. */
export function isRejected(e: unknown): boolean {
  const code = (e as { code?: number })?.code;
  return code === 422 || code === 400;
}

function isNotFound(e: unknown): boolean {
  return (e as { code?: number })?.code === 404;
}

/**
 * The API server answers 429 (with retryAfterSeconds) while a new resource's storage initialises
 * and under API Priority and Fairness, and 503 while it starts: both are waited out, not errors.
 */
export async function retryThrottled<T>(call: () => Promise<T>, attempts = 10): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (e) {
      const err = e as { code?: number; body?: unknown };
      if (i >= attempts || (err.code !== 429 && err.code !== 503)) throw e;
      let seconds = 1;
      try {
        const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
        seconds = Number(
          (body as { details?: { retryAfterSeconds?: number } })?.details?.retryAfterSeconds ?? 1,
        );
      } catch {
        // not a Status body: wait the default
      }
      await new Promise((r) => setTimeout(r, Math.min(seconds, 10) * 1000));
    }
  }
}

export function clientNodeKube(kubeconfig: KubeConfig): Kube {
  const objects = KubernetesObjectApi.makeApiClient(kubeconfig);
  const custom = kubeconfig.makeApiClient(CustomObjectsApi);
  const header = (ref: ObjectRef) => ({
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
  });
  return {
    async get(ref) {
      try {
        return (await retryThrottled(() => objects.read(header(ref) as never))) as never;
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    async list(apiVersion, kind, namespace, labelSelector) {
      const res = await retryThrottled(() =>
        objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector),
      );
      return res.items as never;
    },
    async apply(obj, fieldManager, force) {
      return (await retryThrottled(() =>
        objects.patch(
          obj,
          undefined,
          undefined,
          fieldManager,
          force,
          'application/apply-patch+yaml' as never,
        ),
      )) as never;
    },
    async create(obj) {
      return (await retryThrottled(() => objects.create(obj))) as never;
    },
    async mergePatch(ref, patch) {
      const head = header(ref);
      const body = {
        ...patch,
        ...head,
        metadata: { ...(patch.metadata as object | undefined), ...head.metadata },
      };
      return (await retryThrottled(() =>
        objects.patch(
          body,
          undefined,
          undefined,
          'switchyard-cli',
          undefined,
          'application/merge-patch+json' as never,
        ),
      )) as never;
    },
    async replace(obj) {
      return (await objects.replace(obj)) as never;
    },
    async delete(ref) {
      try {
        await retryThrottled(() => objects.delete(header(ref) as never));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    },
    async replaceStatus(group, version, plural, obj) {
      return (await retryThrottled(() =>
        custom.replaceNamespacedCustomObjectStatus({
          group,
          version,
          plural,
          namespace: obj.metadata?.namespace as string,
          name: obj.metadata?.name as string,
          body: obj,
        }),
      )) as KubernetesObject;
    },
  };
}

export function kubeConfigFrom(text?: string): KubeConfig {
  const kc = new KubeConfig();
  if (text) kc.loadFromString(text);
  else kc.loadFromDefault();
  return withKeepAlive(kc);
}

/**
 * client-node 1.x creates a new https.Agent for every request, so every API call pays a new TCP
 * connection and TLS handshake (measured: ~30 ms a call on the envtest API server, a 50-policy
 * convergence 5x its floor). One keep-alive agent per KubeConfig reuses connections, as client-go
 * does. The agent options (CA, client certificate) are the same for every request of one config.
 */
function withKeepAlive(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as { createAgent(cluster: unknown, options: object): unknown };
  const create = target.createAgent.bind(kc);
  let agent: unknown;
  target.createAgent = (cluster, options) => {
    agent ??= create(cluster, { ...options, keepAlive: true });
    return agent;
  };
  return kc;
}
