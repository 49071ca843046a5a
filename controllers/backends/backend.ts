/**
 * Everything that differs between the two ways Switchyard carries a policy out, behind one
 * interface (as Flagger's `pkg/router` has one router per mesh, and Argo Rollouts' traffic routers
 * own their watches): which objects to write, which kinds it owns and watches, what else in the
 * cluster may already serve the policy's hosts, in what order to write, what split is in force
 * now, when a version can take requests, and which series a canary analysis reads. The policy
 * reconciler (../traffic-policy.ts) and the canary run (../canary-run.ts) are the same for both;
 * `backendFor` is the one place that picks.
 */

import type { MetricSeries } from '../../core/canary/queries.js';
import type { Problem, Source } from '../../core/common/errors.js';
import type { KubeObject } from '../../core/compiler/objects.js';
import type { PolicyPlan, RoutePlan } from '../../core/compiler/plan.js';
import type { GatewayApiChannel } from '../../core/gateway-api/http-route.js';
import type { Reason } from '../../core/resources/conditions.js';
import type { TrafficPolicy } from '../../core/resources/schema.js';
import type { Kube } from '../../kube/client.js';
import type { Cached, ChangeFilter, Manager, WatchEvent, WatchedObject } from '../../kube/manager.js';
import type { TokenAuthenticationSetup } from './istio-tokens.js';

/** The modes a controller runs in, one backend each (index.ts picks). */
export const CONTROLLER_MODES = ['istio', 'gateway', 'gateway-api'] as const;
export type ControllerMode = (typeof CONTROLLER_MODES)[number];

export type Desired =
  /** `problems`: what this backend cannot carry and left out (reported; the rest is written). */
  | { ok: true; objects: KubeObject[]; problems: Problem[] }
  /** Nothing can be written yet, and why (a condition's reason and sentence). */
  | { ok: false; reason: Reason; message: string };

/** Applies objects together (server-side apply, owned); `note` is added to what is reported. */
export type ApplyObjects = (objects: KubeObject[], note?: string) => Promise<void>;

/** A TrafficPolicy as read from the API server (its status loosely typed). */
export type LivePolicy = Omit<TrafficPolicy, 'status'> & {
  status?: { conditions?: { type: string; status: string; message: string }[] };
};

export interface SplitInForce {
  /** The canary's share of the split route now, or null when none is in force. */
  canaryWeight: number | null;
  /** Why there is none, or what a person should know about it. */
  note?: string;
}

/** What a backend's watches may use on the controller's Manager (../setup.ts hands it over). */
export interface BackendWatches {
  manager: Manager;
  /** The cached TrafficPolicies. */
  policies: Cached;
  /** Queues the policy `namespace/name` for a reconcile. */
  requeuePolicy(key: string): void;
  /** An object Switchyard wrote for a policy changed: its policy is queued when someone else did it. */
  ownedChanged(o: WatchedObject, event: WatchEvent): void;
  /** Whether what matters of an object changed since last seen. */
  filter: ChangeFilter;
  /** The intercept-token RequestAuthentication the controller keeps where Istio verifies tokens. */
  tokenAuthentication: TokenAuthenticationSetup;
}

/** What a backend is told about the installation when it works out a policy's objects. */
export interface DesiredContext {
  /**
   * Where the controller keeps Istio's intercept-token objects (istio-tokens.ts), when it was given
   * keys; undefined: nothing verifies tokens.
   */
  tokenVerifierNamespace?: string;
}

/** Which series a canary analysis reads in mesh mode: Istio's standard metrics, or Envoy's own. */
export type MeshMetrics = 'istio' | 'envoy';

/** What `switchyard render` (GitOps, no cluster) is told beside the plan. */
export interface OfflineRenderOptions {
  /** Mesh mode: namespaces in Istio ambient mode (EnvoyFilters are ignored there). */
  ambientNamespaces: ReadonlySet<string>;
  /** Gateway API mode: the channel of the CRDs on the cluster (retries are experimental). */
  gatewayApiChannel: GatewayApiChannel;
  /** Token keys were given: the token objects are written beside the policies' (`--token-jwks`). */
  tokensVerified: boolean;
  /** Gateway API mode on Envoy Gateway: the only Gateways (`namespace/name`) that verify tokens. */
  tokenGateways?: ReadonlySet<string>;
  /** Gateway API mode: Envoy Gateway's CRDs are on the cluster (its policies carry rate limits). */
  envoyGatewayPolicies: boolean;
  /** Where a policy was read from, so a problem names its file. */
  sourceOf: (policy: { namespace: string; name: string }) => Source | undefined;
}

/** How `switchyard install` deploys a mode: files of deploy/install/ and the controller's flags. */
export interface InstallProfile {
  /** The mode's RBAC, beside the rbac.yaml every mode has. */
  readonly rbac: string;
  /** Parts deployed beside the controller (the Node gateway). */
  readonly parts: readonly string[];
  /** Flags the controller gets in this mode, as the chart's defaults. */
  readonly controllerArgs: readonly string[];
}

export interface Backend {
  readonly mode: ControllerMode;
  /**
   * Who checks intercept tokens: the controller (it keeps the mesh's token rules, and needs the
   * JWKS), the Node gateway (it verifies each request itself), or nobody yet (a mode that does not
   * carry token routes: given keys are refused, never silently unused).
   */
  readonly tokensCheckedBy: 'controller' | 'gateway' | 'none';
  /**
   * Whether its token routes match the headers the verifier copies claims into (Gateway API routes
   * cannot read claims), rather than the claims themselves (core/istio/request-authentication.ts).
   */
  readonly tokenClaimHeaders: boolean;
  readonly install: InstallProfile;
  /**
   * The kinds it writes and prunes, in pruning order (routes before what they refer to); an
   * `optional` kind is one the cluster may not serve (an implementation's own policy), where there
   * is nothing to prune.
   */
  readonly ownedKinds: readonly { apiVersion: string; kind: string; optional?: boolean }[];
  /** What to write for one compiled policy (the reconciler adds owner references). */
  desired(kube: Kube, plan: PolicyPlan, namespace: string, context: DesiredContext): Promise<Desired>;
  /** Objects outside Switchyard that already serve what `objects` would: one sentence each. */
  foreignConflicts(kube: Kube, objects: readonly KubeObject[], namespace: string): Promise<string[]>;
  /**
   * Writes `objects` in the order this backend needs; `requeueAfterMs` when something is left to
   * do later (a subset kept until the proxies no longer route to it).
   */
  write(
    kube: Kube,
    objects: readonly KubeObject[],
    apply: ApplyObjects,
    now: Date,
  ): Promise<{ requeueAfterMs?: number }>;
  /** The split carried out now for `policy`, read back from what serves it. */
  splitInForce(kube: Kube, policy: LivePolicy): Promise<SplitInForce>;
  /** Adds the watches of the kinds this backend writes or reads to the controller's Manager. */
  addWatches(watches: BackendWatches): void;
  /**
   * What `version` of `policy` still waits for before it can take requests (a sentence for an
   * Event), or undefined when it can: a progressive run gives it no share before.
   */
  versionNotServing(kube: Kube, policy: TrafficPolicy, version: string): Promise<string | undefined>;
  /**
   * Whether each version is sent to through a Service of its own (`<service>--<version>`) rather
   * than a subset of the policy's Service: the mesh's series then name that Service.
   */
  readonly versionServices: boolean;
  /** The series the built-in analysis metrics of a canary run read. */
  analysisSeries(meshMetrics: MeshMetrics): MetricSeries;
  /**
   * What `switchyard render` writes for a plan without a cluster (pure): what the controller
   * would write, with what the cluster would tell it taken from `options` (a Service's selector
   * from the policy's workloadLabels).
   */
  renderOffline(
    plan: RoutePlan,
    options: OfflineRenderOptions,
  ): { objects: KubeObject[]; problems: Problem[] };
}
