/**
 * Every label, annotation and finalizer name Switchyard writes on Kubernetes objects, in one place:
 * they are part of the API that other tools (and other Switchyard parts) select objects by. They
 * live in the core because the renderer stamps some of them on what it renders.
 */

/** `app.kubernetes.io/managed-by: switchyard` on every object Switchyard writes. */
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'switchyard';
/** `app.kubernetes.io/part-of: switchyard` on the CRDs. */
export const PART_OF = 'app.kubernetes.io/part-of';
/** The TrafficPolicy an object was written for (a Preview's, a rendered object's). */
export const POLICY_LABEL = 'switchyard.dev/policy';
/** The Preview a Deployment and Service were written for. */
export const PREVIEW_LABEL = 'switchyard.dev/preview';
/** On preview pods (`preview`), so `appliesTo: previews` can select them. */
export const PREVIEW_ROLE_LABEL = 'switchyard.dev/role';
/** The version a gateway-mode Service selects. */
export const VERSION_LABEL = 'switchyard.dev/version';
/** Which Service a gateway-mode version Service belongs to (read by `gateway --kube`). */
export const VERSION_OF_LABEL = 'switchyard.dev/version-of';
/** The pull request a Preview belongs to (label values cannot hold the repository's "/"). */
export const PULL_REQUEST_LABEL = 'switchyard.dev/pull-request';
/** A pull request label that asks for no preview. */
export const NO_PREVIEW_LABEL = 'no-preview';

/** Annotation: the event time (pull_request.updated_at) a Preview was written for. */
export const HEAD_UPDATED_AT = 'switchyard.dev/head-updated-at';
/**
 * On a mesh-mode DestinationRule: `{"<subset>": "<RFC 3339 time>"}`, when each subset that no
 * route names any more stopped being named. It stays until a grace period has passed, so proxies
 * still holding the old routes never meet a missing cluster.
 */
export const RETIRED_SUBSETS_ANNOTATION = 'switchyard.dev/retired-subsets';
/** Annotation: a hash of what Switchyard last applied, to tell its own writes from others'. */
export const APPLIED_HASH = 'switchyard.dev/applied-hash';

/**
 * On a TrafficPolicy: `<version>@<step>`, the run and step (1-based) a person resumed with
 * `switchyard canary resume`; that run, paused at that step, moves on. Naming the version keeps
 * an earlier run's resume from moving a new run on.
 */
export const CANARY_RESUME_ANNOTATION = 'switchyard.dev/canary-resume';
/** On a TrafficPolicy: the canary version `switchyard canary pause` holds at its step. */
export const CANARY_PAUSE_ANNOTATION = 'switchyard.dev/canary-pause';
/** On a TrafficPolicy: the canary version `switchyard canary abort` rolled back (that run only). */
export const CANARY_ABORT_ANNOTATION = 'switchyard.dev/canary-abort';

/** Finalizer: a Preview's Deployment and Service are removed before it goes. */
export const PREVIEW_FINALIZER = 'switchyard.dev/preview-cleanup';
/** Finalizer: GitHub is told a preview went before it goes. */
export const REPORT_FINALIZER = 'switchyard.dev/github-report';

/** Kubernetes' own: the Service an EndpointSlice belongs to. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Istio's: a namespace in ambient mode (no sidecars; EnvoyFilters do not apply). */
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
