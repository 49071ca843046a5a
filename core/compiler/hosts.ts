/**
 * Which hosts overlap, judged as Istio resolves the hosts of a VirtualService: a short name
 * (`checkout`) is a Service of the VirtualService's namespace, `checkout.shop` and
 * `checkout.shop.svc` are that Service too, and a wildcard (`*.example.com`, `*`) covers every host
 * under it. Two VirtualServices whose hosts overlap for one gateway are undefined behaviour in
 * Istio, so Switchyard lets one policy serve a host and reports the others (docs/architecture.md).
 */

/** The names a host written in `namespace` may stand for (a two-label host may be `name.namespace`). */
export function hostForms(host: string, namespace: string, clusterDomain: string): string[] {
  const h = host.toLowerCase();
  if (h.startsWith('*')) return [h];
  const labels = h.split('.');
  if (labels.length === 1) return [`${h}.${namespace}.svc.${clusterDomain}`];
  if (labels.length === 2) return [h, `${h}.svc.${clusterDomain}`];
  if (labels.length === 3 && labels[2] === 'svc') return [`${h}.${clusterDomain}`];
  return [h];
}

/** `*` covers everything; `*.example.com` covers `a.example.com` and `*.a.example.com`. */
function covers(pattern: string, host: string): boolean {
  if (pattern === host || pattern === '*') return true;
  return pattern.startsWith('*.') && host.endsWith(pattern.slice(1));
}

export function hostsOverlap(a: string, b: string): boolean {
  return covers(a, b) || covers(b, a);
}

export interface HostClaim<T> {
  owner: T;
  /** The host as the owner wrote it. */
  host: string;
}

/**
 * Hosts claimed so far, in claim order. Exact names are looked up in a map and wildcards scanned
 * (they are few), so claiming every host of 1,000 policies stays linear.
 */
export class HostClaims<T> {
  private readonly exact = new Map<string, HostClaim<T>>();
  private readonly wildcards: (HostClaim<T> & { form: string })[] = [];

  constructor(private readonly clusterDomain: string) {}

  /** The claim one of `hosts` (written in `namespace`) overlaps, with the host that overlaps it. */
  conflict(hosts: readonly string[], namespace: string): (HostClaim<T> & { mine: string }) | undefined {
    for (const host of hosts) {
      for (const form of hostForms(host, namespace, this.clusterDomain)) {
        let found: HostClaim<T> | undefined;
        if (form.startsWith('*')) {
          for (const [name, claim] of this.exact) if (covers(form, name)) found ??= claim;
          found ??= this.wildcards.find((w) => hostsOverlap(w.form, form));
        } else {
          found = this.exact.get(form) ?? this.wildcards.find((w) => covers(w.form, form));
        }
        if (found) return { ...found, mine: host };
      }
    }
    return undefined;
  }

  claim(owner: T, hosts: readonly string[], namespace: string): void {
    for (const host of hosts)
      for (const form of hostForms(host, namespace, this.clusterDomain)) {
        if (form.startsWith('*')) this.wildcards.push({ owner, host, form });
        else if (!this.exact.has(form)) this.exact.set(form, { owner, host });
      }
  }
}

/** The hosts a claimant serves, as written, and the namespace they were written in. */
export interface ClaimedHosts {
  hosts: readonly string[];
  namespace: string;
}

/**
 * Rule 7 (docs/architecture.md), the one place it is decided: claimants, in `claimOrder`, each
 * claim their hosts unless one of them overlaps a host claimed before; such a claimant serves none
 * of its hosts (it claims nothing, so it holds nothing from those after it). Returns each of those
 * with the claim it ran into. The compiler and the controller both judge by it.
 */
export function hostConflicts<T>(
  ordered: readonly T[],
  hostsOf: (claimant: T) => ClaimedHosts,
  clusterDomain: string,
): Map<T, HostClaim<T> & { mine: string }> {
  const claims = new HostClaims<T>(clusterDomain);
  const conflicts = new Map<T, HostClaim<T> & { mine: string }>();
  for (const claimant of ordered) {
    const { hosts, namespace } = hostsOf(claimant);
    const held = claims.conflict(hosts, namespace);
    if (held) conflicts.set(claimant, held);
    else claims.claim(claimant, hosts, namespace);
  }
  return conflicts;
}

/** Whether two claimants' hosts overlap, each read in its own namespace. */
export function claimsOverlap(a: ClaimedHosts, b: ClaimedHosts, clusterDomain: string): boolean {
  const claims = new HostClaims<true>(clusterDomain);
  claims.claim(true, a.hosts, a.namespace);
  return claims.conflict(b.hosts, b.namespace) !== undefined;
}

/**
 * The claimants whose verdict under rule 7 may change when `changed` changes its hosts (or goes):
 * those whose hosts overlap it and, since a claimant that wins or loses frees or takes hosts of
 * others, those overlapping them, and so on.
 */
export function affectedByHostChange<T>(
  changed: ClaimedHosts,
  claimants: readonly T[],
  hostsOf: (claimant: T) => ClaimedHosts,
  clusterDomain: string,
): T[] {
  const affected: T[] = [];
  const pending = new Set(claimants);
  const frontier = [changed];
  for (let next = frontier.pop(); next; next = frontier.pop()) {
    for (const claimant of pending) {
      const hosts = hostsOf(claimant);
      if (!claimsOverlap(next, hosts, clusterDomain)) continue;
      pending.delete(claimant);
      affected.push(claimant);
      frontier.push(hosts);
    }
  }
  return affected;
}

/**
 * Who serves a host two policies claim: the older (creation time; files have none and count as
 * oldest), then the first by namespace/name. Both backends and the controller use this order.
 */
export function claimOrder(
  a: { metadata: { namespace?: string; name: string; creationTimestamp?: string | null } },
  b: { metadata: { namespace?: string; name: string; creationTimestamp?: string | null } },
): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = `${a.metadata.namespace ?? 'default'}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? 'default'}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
