/** Deterministic names shared by the compiler, the controller and the PR bot. */
import { createHash } from 'node:crypto';

export const MAX_DNS_LABEL = 63;

/** `text` cut to `max` characters (a DNS label's 63 by default), without a trailing "-" left by the cut. */
export function cutName(text: string, max = MAX_DNS_LABEL): string {
  return text.slice(0, max).replace(/-+$/, '');
}

export function sha7(commit: string): string {
  return commit.toLowerCase().slice(0, 7);
}

/** The pinned preview reference and version: `pr-42-7f3a2c1`. */
export function pinnedRef(pullRequest: number, commit: string): string {
  return `pr-${pullRequest}-${sha7(commit)}`;
}

/** The moving preview reference: `pr-42` (always the newest Ready commit of PR 42). */
export function latestRef(pullRequest: number): string {
  return `pr-${pullRequest}`;
}

/**
 * `checkout-pr-42-7f3a2c1`, at most 63 characters: a long policy name is cut (never the PR or SHA,
 * which make the name unique), and a trailing "-" left by the cut is dropped.
 */
export function previewName(policy: string, pullRequest: number, commit: string): string {
  const suffix = `-${pinnedRef(pullRequest, commit)}`;
  return `${cutName(policy, MAX_DNS_LABEL - suffix.length)}${suffix}`;
}

/** `pr-42--checkout.preview.example.com`, or undefined when the first label would exceed 63 characters. */
export function previewHost(ref: string, policy: string, domain: string): string | undefined {
  const label = `${ref}--${policy}`;
  return label.length > MAX_DNS_LABEL ? undefined : `${label}.${domain}`;
}

/**
 * `checkout/v2`: names one destination, in the `x-switchyard-upstream` response header and as a
 * GatewayConfig upstream key (a preview's version is its pinned reference).
 */
export function upstreamKey(service: string, version: string): string {
  return `${service}/${version}`;
}

/** `shop/checkout/v2`: an upstream key in a gateway that serves several namespaces (`--kube`). */
export function namespacedUpstreamKey(namespace: string, key: string): string {
  return `${namespace}/${key}`;
}

export function serviceHost(service: string, namespace: string, clusterDomain: string): string {
  return `${service}.${namespace}.svc.${clusterDomain}`;
}

/** Identifies one canary run: changes when the canary version does, so old sticky cookies lapse. */
export function canaryRunId(namespace: string, policy: string, canaryVersion: string): string {
  return createHash('sha256').update(`${namespace}/${policy}/${canaryVersion}`).digest('hex').slice(0, 8);
}

/**
 * The audience an intercept token is minted for: one policy (`shop/checkout`). A token for another
 * policy's preview proves nothing here.
 */
export function tokenAudience(namespace: string, policy: string): string {
  return `${namespace}/${policy}`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const shortHash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 6);

/**
 * A DNS-1123 label for a version, for Istio subset names: the version itself when it already is one
 * (`v2`), else a readable form with a hash of the version as written (`1.27.3` → `1-27-3-<hash>`,
 * `V2` → `v2-<hash>`), so two versions never share one.
 */
export function subsetName(version: string): string {
  if (DNS_LABEL.test(version)) return version;
  const readable = version
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${cutName(readable, MAX_DNS_LABEL - 7)}-${shortHash(version)}`;
}

/**
 * `checkout--v2`: the Service gateway mode writes for one version (a DNS-1035 label, as Service
 * names are). Too long, it is cut and a hash of the whole name keeps it unique.
 */
export function versionServiceName(service: string, version: string): string {
  const name = `${service}--${subsetName(version)}`;
  if (name.length <= MAX_DNS_LABEL) return name;
  return `${cutName(name, MAX_DNS_LABEL - 7)}-${shortHash(name)}`;
}
