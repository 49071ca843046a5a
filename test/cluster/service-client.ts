/**
 * A client that reaches a Service the way kube-proxy would send it there: to the ready endpoints
 * of its EndpointSlices, round-robin, following them as they change (read every 100 ms). The test
 * cluster has no kube-proxy (docs/testing.md), so a load "through the gateway's Service" is sent
 * this way; a pod being deleted leaves the set when kube-controller-manager marks it not ready, as
 * it leaves kube-proxy's rules.
 */
import { DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';

export interface ServiceClient {
  /** The base URL of the next ready endpoint (throws when there is none). */
  next(): string;
  /** Every ready endpoint's base URL, now. */
  ready(): string[];
  stop(): void;
}

export async function followService(
  kc: KubeConfig,
  namespace: string,
  service: string,
  portName: string,
): Promise<ServiceClient> {
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  let endpoints: string[] = [];
  let turn = 0;
  let running = true;
  const read = async () => {
    const slices = await discovery.listNamespacedEndpointSlice({
      namespace,
      labelSelector: `kubernetes.io/service-name=${service}`,
    });
    endpoints = slices.items.flatMap((s) => {
      const port = s.ports?.find((p) => p.name === portName)?.port;
      return (s.endpoints ?? [])
        .filter((e) => e.conditions?.ready === true)
        .flatMap((e) => e.addresses.map((a) => `http://${a}:${port}`));
    });
  };
  await read();
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, 100));
      await read().catch(() => undefined); // keep the last set through an API hiccup, as kube-proxy does
    }
  })();
  void loop;
  return {
    next() {
      if (endpoints.length === 0) throw new Error(`${namespace}/${service} has no ready endpoint`);
      turn = (turn + 1) % endpoints.length;
      return endpoints[turn] as string;
    },
    ready: () => [...endpoints],
    stop() {
      running = false;
    },
  };
}
