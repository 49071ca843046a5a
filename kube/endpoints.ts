/**
 * What a Service's EndpointSlices say about where its traffic can go: the one reading of them that
 * `gateway --kube` routes by and the controller's gateway-mode canary runs wait for, so the run
 * gives a version a share exactly when the gateway has somewhere to send it.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

export type ServiceObject = KubernetesObject & {
  spec?: { ports?: { name?: string; port: number; targetPort?: number | string }[] };
};

export type EndpointSliceObject = KubernetesObject & {
  addressType?: string;
  ports?: { name?: string; port?: number }[] | null;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null } }[] | null;
};

/**
 * The ready endpoint URLs of a Service, on the endpoint port that backs `servicePort`. An endpoint
 * whose `ready` is unset counts as ready (the EndpointSlice API's meaning of an unknown state).
 */
export function readyEndpointUrls(
  service: ServiceObject,
  servicePort: number,
  slices: readonly EndpointSliceObject[],
): URL[] {
  const port = service.spec?.ports?.find((p) => p.port === servicePort) ?? service.spec?.ports?.[0];
  const urls: URL[] = [];
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const sp =
      (slice.ports ?? []).find((p) => (p.name ?? '') === (port?.name ?? '')) ??
      ((slice.ports ?? []).length === 1 ? slice.ports?.[0] : undefined);
    if (!sp?.port) continue;
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const address of e.addresses) {
        const host = slice.addressType === 'IPv6' ? `[${address}]` : address;
        urls.push(new URL(`http://${host}:${sp.port}`));
      }
    }
  }
  return urls;
}
