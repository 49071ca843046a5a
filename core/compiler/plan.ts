/**
 * The RoutePlan: a plain, serialisable value that holds every routing decision. The compiler
 * makes it; the Istio renderer and the Node gateway only carry it out. Its shape follows Istio's
 * HTTPRoute closely on purpose, so that rendering is a translation and the gateway evaluates the
 * very matches that Envoy will.
 */
import type { AppliesTo } from '../resources/schema.js';

/** The response header that names the destination that answered, in both backends. */
export const UPSTREAM_HEADER = 'x-switchyard-upstream';

export type StringMatch = { exact: string } | { prefix: string } | { regex: string };

/** Every condition must hold (AND). */
export interface RequestMatch {
  /** Matched against the raw Host / :authority value, port included. */
  authority?: StringMatch;
  method?: StringMatch;
  /** Lowercase header names. A missing header never matches. */
  headers?: Record<string, StringMatch>;
  /** Claims of a verified intercept token (gateway: signed token; Istio: `@request.auth.claims.*`). */
  claims?: Record<string, StringMatch>;
}

export type DestinationRole = 'stable' | 'canary' | 'preview' | 'version';

export interface Destination {
  /** `<service>/<version>`: the `x-switchyard-upstream` value and the GatewayConfig key. */
  upstream: string;
  version: string;
  role: DestinationRole;
  /** FQDN of the Kubernetes Service that serves it. */
  host: string;
  /** DestinationRule subset, for versions of the routed Service; previews have a Service of their own. */
  subset?: string;
  port: number;
}

export interface WeightedDestination extends Destination {
  /** Integer 0..100; the weights of one route always add up to 100. */
  weight: number;
  /** A full Set-Cookie value sent on every response from this destination (sticky canary). */
  setCookie?: string;
}

export type RouteKind =
  | 'preview-host'
  | 'preview-pinned'
  | 'preview-latest'
  | 'intercept'
  | 'sticky'
  | 'split';

export interface MirrorPlan {
  destination: Destination;
  /** 0..100; Istio's absent mirrorPercentage means 100, we always write it. */
  percent: number;
  maxBodyBytes: number;
}

export interface Route {
  /** Unique within its policy; Istio writes it into access logs. */
  name: string;
  kind: RouteKind;
  /** Any one must hold (OR); an empty list matches every request. */
  matches: RequestMatch[];
  destinations: WeightedDestination[];
  mirror?: MirrorPlan;
}

export type RateLimitKeyPlan = { type: 'clientIp' } | { type: 'header'; header: string } | { type: 'route' };

export interface RateLimitPlan {
  name: string;
  key: RateLimitKeyPlan;
  limit: number;
  windowSeconds: number;
  appliesTo: AppliesTo;
  enforce: boolean;
}

export interface Subset {
  name: string;
  labels: Record<string, string>;
}

export interface PolicyPlan {
  name: string;
  namespace: string;
  service: string;
  port: number;
  /** FQDN of the routed Service. */
  serviceHost: string;
  /** The hosts the main VirtualService serves. */
  hosts: string[];
  /** Every Host value that reaches this policy in the gateway (hosts plus the Service's short names). */
  hostAliases: string[];
  /** Istio Gateways for `hosts`; empty means the mesh. */
  gateways: string[];
  /** Preview URL hosts, bound to `previewGateway`. */
  previewHosts: string[];
  previewGateway?: string;
  versionLabel: string;
  /** The version that takes what the canary does not. */
  stable: string;
  /** The canary version and its share of the split (absent: no canary). */
  canary?: { version: string; weight: number };
  /** Labels that select the Service's pods (EnvoyFilter workload selectors). */
  workloadLabels: Record<string, string>;
  subsets: Subset[];
  routes: Route[];
  timeoutMs?: number;
  /** How the Service's pods are spoken to: HTTP/2 for gRPC (Istio: h2UpgradePolicy UPGRADE). */
  upstreamProtocol: UpstreamProtocol;
  retries?: { attempts: number; perTryTimeoutMs?: number; on: string[] };
  rateLimits: RateLimitPlan[];
  /** HTTP/1.1 Upgrade protocols the Node gateway tunnels, when the policy names them (else DEFAULTS.upgrades). */
  upgrades?: string[];
}

export const UPSTREAM_PROTOCOLS = ['http1', 'http2'] as const;
export type UpstreamProtocol = (typeof UPSTREAM_PROTOCOLS)[number];

export interface RoutePlan {
  policies: PolicyPlan[];
}
