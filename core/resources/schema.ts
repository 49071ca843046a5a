/**
 * The Switchyard resources, written once. From these TypeBox schemas come the TypeScript types
 * (`Static<>`), the validation in `validate.ts` (ajv, with readable errors) and the CRD
 * `openAPIV3Schema` in `crds.ts`. `description` doubles as the "what was expected" half of an
 * error message, so keep it short and concrete.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';

export const GROUP = 'switchyard.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** How the API server names each resource: what watches, lists and status writes say. */
export const RESOURCE = {
  TrafficPolicy: {
    group: GROUP,
    version: VERSION,
    apiVersion: API_VERSION,
    kind: 'TrafficPolicy',
    plural: 'trafficpolicies',
  },
  Preview: { group: GROUP, version: VERSION, apiVersion: API_VERSION, kind: 'Preview', plural: 'previews' },
} as const;

const closed = { additionalProperties: false } as const;

/** A string matching `pattern`, described for the person whose value does not. */
function Text(pattern: string, description: string, maxLength?: number) {
  return Type.String({ pattern, ...(maxLength !== undefined ? { maxLength } : {}), description });
}

/** A Go-style duration limited to the units people use for traffic: 500ms, 5s, 1m, 24h, 1h30m. */
export const Duration = Text('^([0-9]+(ms|s|m|h))+$', 'a duration such as 500ms, 5s, 1m or 24h', 32);

/**
 * A version is any legal Kubernetes label value (`v2`, `1.27.3`, `2025.03`, `v3.0.0-beta.2`): it is
 * matched as a pod label. Names Istio or Kubernetes restrict further (subset names, per-version
 * Services) are derived from it (core/compiler/names.ts).
 */
export const VersionName = Text(
  '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$',
  'a version: a Kubernetes label value (letters, digits, "-", "_" and ".", starting and ending with a letter or digit, at most 63 characters)',
  63,
);

export const DnsLabel = Text(
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  'a DNS-1123 label: lowercase letters, digits and "-", at most 63 characters',
  63,
);

/** Lowercase because Istio requires it and HTTP/2 sends header names lowercased anyway. */
export const HeaderName = Text(
  "^[a-z0-9!#$%&'*+.^_`|~-]+$",
  'a lowercase HTTP header name such as x-debug-user',
  256,
);

/** W3C baggage key: an RFC 7230 token (no spaces, no separators). */
export const BaggageKey = Text(
  "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
  "a W3C baggage key: letters, digits and !#$%&'*+-.^_`|~, no spaces",
  256,
);

export const HostName = Text(
  '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  'a lowercase DNS host name such as shop.example.com (a leading "*." is allowed)',
  253,
);

/** `namespace/name` of an Istio Gateway: a DNS label and a DNS subdomain. */
export const GatewayRef = Type.String({
  minLength: 1,
  maxLength: 317,
  description: 'an Istio Gateway as namespace/name',
});

/** A GitHub repository: an owner of at most 39 characters, a name of at most 100. */
export const Repository = Type.String({
  pattern: '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$',
  maxLength: 140,
  description: 'a GitHub repository as owner/name',
});

/** Where matching traffic goes: a version of the service, or a preview (`pr-42` or `pr-42-7f3a2c1`). */
export const Target = Type.Object(
  {
    version: Type.Optional(VersionName),
    preview: Type.Optional(
      Type.String({
        pattern: '^pr-[0-9]+(-[0-9a-f]{7})?$',
        maxLength: 32,
        description: 'a preview reference such as pr-42 (newest commit) or pr-42-7f3a2c1 (one commit)',
      }),
    ),
  },
  { ...closed, description: 'exactly one of version or preview' },
);

export const InterceptMatch = Type.Object(
  {
    header: Type.Optional(HeaderName),
    baggage: Type.Optional(BaggageKey),
    exact: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'a non-empty string' })),
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'a non-empty prefix' })),
    // Compiling is linear in the pattern: bounded here, and by RE2's program size in validate.ts.
    regex: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: 'an RE2 regular expression' }),
    ),
  },
  { ...closed, description: 'one of header or baggage, and one of exact, prefix or regex' },
);

export const Intercept = Type.Object(
  {
    name: DnsLabel,
    match: InterceptMatch,
    to: Target,
    requireToken: Type.Optional(
      Type.Boolean({ description: 'true: the value must come from a verified token, not a plain header' }),
    ),
  },
  closed,
);

export const StickyCookie = Type.Object(
  {
    cookie: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]+$',
        maxLength: 64,
        description: 'a cookie name (letters, digits, "-", "_")',
      }),
    ),
    maxAge: Type.Optional(Duration),
  },
  closed,
);

const Weight = Type.Integer({ minimum: 0, maximum: 100, description: 'an integer from 0 to 100' });

/** One weight of a progressive run, held for `pause` (absent: until `switchyard canary resume`). */
export const CanaryStep = Type.Object({ weight: Weight, pause: Type.Optional(Duration) }, closed);

/** Analysis values are rates, latencies and counts: within ±10^12 (no infinities from YAML's .inf). */
const ThresholdBounds = { minimum: -1e12, maximum: 1e12 } as const;

export const ThresholdRange = Type.Object(
  {
    min: Type.Optional(Type.Number({ ...ThresholdBounds, description: 'the lowest passing value' })),
    max: Type.Optional(Type.Number({ ...ThresholdBounds, description: 'the highest passing value' })),
  },
  closed,
);

/** Metrics Switchyard can query for either backend without a `query` (core/canary/queries.ts). */
export const BUILTIN_METRICS = ['request-success-rate', 'request-duration'] as const;

export const AnalysisMetric = Type.Object(
  {
    name: Text('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', 'a metric name (lowercase letters, digits and "-")', 63),
    query: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description:
          'PromQL giving one number; {{namespace}}, {{policy}}, {{service}}, {{port}}, {{stable}}, {{canary}} and {{interval}} are filled in. Without it the name must be a built-in: request-success-rate (percent) or request-duration (p99, ms)',
      }),
    ),
    thresholdRange: ThresholdRange,
  },
  closed,
);

export const CanaryAnalysis = Type.Object(
  {
    interval: Duration,
    failureLimit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: 'failed analyses that roll the run back (default 2)',
      }),
    ),
    metrics: Type.Array(AnalysisMetric, { minItems: 1, maxItems: 10 }),
  },
  closed,
);

export const Canary = Type.Object(
  {
    version: VersionName,
    /** The weight set by hand; a progressive run (steps) decides it instead. */
    weight: Type.Optional(Weight),
    sticky: Type.Optional(StickyCookie),
    steps: Type.Optional(Type.Array(CanaryStep, { minItems: 1, maxItems: 50 })),
    stepWeight: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, description: 'an integer from 1 to 100' }),
    ),
    maxWeight: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, description: 'an integer from 1 to 100' }),
    ),
    interval: Type.Optional(Duration),
    analysis: Type.Optional(CanaryAnalysis),
    autoPromote: Type.Optional(
      Type.Boolean({ description: 'promote when the last step passes (default: hold)' }),
    ),
  },
  closed,
);

/** A string enum as plain JSON Schema `enum`, which both ajv and CRD schemas understand. */
function StringEnum<T extends string>(values: readonly T[], description: string) {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], description });
}

/** The methods a mirror may copy (`spec.mirror.methods`). */
export const HTTP_METHODS = ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE', 'POST', 'PATCH'] as const;
export const HttpMethod = StringEnum(HTTP_METHODS, 'an HTTP method in capitals');

export const Mirror = Type.Object(
  {
    to: Target,
    percent: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, description: 'a percentage from 0 to 100' }),
    ),
    methods: Type.Optional(
      Type.Array(HttpMethod, { minItems: 1, maxItems: HTTP_METHODS.length, uniqueItems: true }),
    ),
    // Each mirrored body is held in memory until it is copied: 10 MiB at most.
    maxBodyBytes: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10_485_760, description: 'a byte count, at most 10 MiB' }),
    ),
  },
  closed,
);

export const RateLimitKey = Type.Object(
  {
    clientIp: Type.Optional(Type.Object({}, closed)),
    header: Type.Optional(HeaderName),
    route: Type.Optional(Type.Object({}, closed)),
  },
  { ...closed, description: 'exactly one of clientIp, header or route' },
);

export const AppliesTo = StringEnum(
  ['all', 'stable', 'canary', 'previews'] as const,
  'all, stable, canary or previews',
);

export const RateLimit = Type.Object(
  {
    name: DnsLabel,
    key: RateLimitKey,
    // Envoy's token bucket counts in 32 bits.
    limit: Type.Integer({ minimum: 1, maximum: 4_294_967_295, description: 'a positive integer below 2^32' }),
    window: Duration,
    appliesTo: Type.Optional(AppliesTo),
    enforce: Type.Optional(Type.Boolean()),
  },
  closed,
);

export const RetryOn = Type.String({
  pattern:
    '^(5xx|gateway-error|reset|connect-failure|envoy-ratelimited|retriable-4xx|refused-stream|retriable-status-codes|retriable-headers|cancelled|deadline-exceeded|internal|resource-exhausted|unavailable|[1-5][0-9][0-9])$',
  maxLength: 32,
  description: 'an Envoy retry condition (5xx, gateway-error, reset, connect-failure, …) or a status code',
});

export const Retries = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 10, description: 'an integer from 0 to 10' }),
    perTryTimeout: Type.Optional(Duration),
    on: Type.Optional(Type.Array(RetryOn, { maxItems: 16, uniqueItems: true })),
  },
  closed,
);

export const PreviewSettings = Type.Object(
  {
    repository: Repository,
    image: Type.Optional(
      Type.String({ minLength: 1, maxLength: 512, description: 'an image, with {sha} for the commit' }),
    ),
    branches: Type.Optional(
      Type.Array(
        Type.String({
          pattern: '^[^\\s]+$',
          maxLength: 255,
          description: 'a base branch name; * matches any run of characters (release/*)',
        }),
        { minItems: 1, maxItems: 32, uniqueItems: true },
      ),
    ),
    drafts: Type.Optional(Type.Boolean({ description: 'draft pull requests get previews too' })),
    // A fork's pull request is anyone's code: none get a preview unless the policy says so.
    forks: Type.Optional(
      Type.Boolean({ description: 'pull requests from forks get previews too (default false)' }),
    ),
    forkAuthors: Type.Optional(
      Type.Array(
        StringEnum(
          [
            'OWNER',
            'MEMBER',
            'COLLABORATOR',
            'CONTRIBUTOR',
            'FIRST_TIME_CONTRIBUTOR',
            'FIRST_TIMER',
            'NONE',
          ] as const,
          "a GitHub author association (the pull request's author_association)",
        ),
        {
          maxItems: 7,
          uniqueItems: true,
          description: 'authors whose pull requests from forks get previews even when forks is false',
        },
      ),
    ),
    header: Type.Optional(HeaderName),
    ttl: Type.Optional(Duration),
    maxPerPullRequest: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
    maxActive: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        description: 'pull requests with previews at once; a further one is refused until one closes',
      }),
    ),
    domain: Type.Optional(HostName),
    gateway: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 317,
        description: 'an Istio Gateway as namespace/name for preview URLs',
      }),
    ),
    requireToken: Type.Optional(Type.Boolean()),
    // A preview runs code from a pull request: by default with the stable pod's identity, env and
    // volumes (a clone). These narrow what it gets.
    serviceAccountName: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
        maxLength: 253,
        description: "the ServiceAccount previews run as, instead of the stable pods' one",
      }),
    ),
    removeEnv: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256, description: 'an environment variable name' }), {
        maxItems: 64,
        uniqueItems: true,
        description: 'environment variables the stable pods have that previews do not get',
      }),
    ),
  },
  closed,
);

export const TrafficPolicySpec = Type.Object(
  {
    service: DnsLabel,
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'a port number from 1 to 65535' }),
    hosts: Type.Optional(Type.Array(HostName, { minItems: 1, maxItems: 64, uniqueItems: true })),
    gateways: Type.Optional(Type.Array(GatewayRef, { maxItems: 16, uniqueItems: true })),
    versionLabel: Type.Optional(
      Type.String({
        pattern: '^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$',
        maxLength: 317,
        description: 'a Kubernetes label key such as version',
      }),
    ),
    workloadLabels: Type.Optional(
      Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 63 }), {
        maxProperties: 32,
        description: "labels that select the service's pods (default: app: <service>)",
      }),
    ),
    stable: VersionName,
    canary: Type.Optional(Canary),
    intercepts: Type.Optional(Type.Array(Intercept, { maxItems: 64 })),
    mirror: Type.Optional(Mirror),
    rateLimits: Type.Optional(Type.Array(RateLimit, { maxItems: 16 })),
    timeout: Type.Optional(Duration),
    retries: Type.Optional(Retries),
    upstreamProtocol: Type.Optional(
      StringEnum(
        ['http1', 'http2'] as const,
        'http1 or http2: how the Service is spoken to (http2 for gRPC; default http1)',
      ),
    ),
    previews: Type.Optional(PreviewSettings),
    upgrades: Type.Optional(
      Type.Array(
        Text("^[a-z0-9!#$%&'*+.^_`|~-]+$", 'a lowercase Upgrade protocol token such as websocket', 64),
        {
          maxItems: 8,
          uniqueItems: true,
          description:
            'the HTTP/1.1 Upgrade protocols the Node gateway tunnels for this service (default [websocket]); others get 403',
        },
      ),
    ),
  },
  closed,
);

export const Condition = Type.Object({
  type: Type.String(),
  status: StringEnum(['True', 'False', 'Unknown'] as const, 'True, False or Unknown'),
  reason: Type.String(),
  message: Type.String(),
  observedGeneration: Type.Optional(Type.Integer()),
  lastTransitionTime: Type.String(),
});

export const CANARY_RUN_PHASES = ['Progressing', 'Paused', 'Succeeded', 'RolledBack', 'Failed'] as const;

/** A progressive run's whole state (core/canary/progression.ts): a new leader continues from it. */
export const CanaryRunStatus = Type.Object({
  version: Type.String(),
  phase: StringEnum(CANARY_RUN_PHASES, 'Progressing, Paused, Succeeded, RolledBack or Failed'),
  step: Type.Integer(),
  weight: Type.Integer(),
  startedAt: Type.String(),
  stepStartedAt: Type.String(),
  failures: Type.Integer(),
  weightsUsed: Type.Array(Type.Integer()),
  message: Type.String(),
  pausedAt: Type.Optional(Type.String()),
  lastAnalysis: Type.Optional(
    Type.Object({
      at: Type.String(),
      passed: Type.Boolean(),
      metrics: Type.Array(
        Type.Object({
          name: Type.String(),
          value: Type.Optional(Type.Number()),
          threshold: Type.String(),
          verdict: StringEnum(['pass', 'fail', 'no-data', 'error'] as const, 'pass, fail, no-data or error'),
          error: Type.Optional(Type.String()),
        }),
      ),
    }),
  ),
});

export const TrafficPolicyStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  conditions: Type.Optional(Type.Array(Condition)),
  /** What carries the policy out: the controller's --mode when it last reconciled it. */
  backend: Type.Optional(
    StringEnum(['istio', 'gateway', 'gateway-api'] as const, 'istio, gateway or gateway-api'),
  ),
  written: Type.Optional(
    Type.Array(Type.Object({ apiVersion: Type.String(), kind: Type.String(), name: Type.String() })),
  ),
  canary: Type.Optional(CanaryRunStatus),
});

export const PreviewPhase = StringEnum(
  ['Pending', 'Deploying', 'Ready', 'Failed', 'Expired'] as const,
  'Pending, Deploying, Ready, Failed or Expired',
);

export const PreviewSpec = Type.Object(
  {
    policy: DnsLabel,
    repository: Repository,
    pullRequest: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'a pull request number' }),
    commit: Type.String({
      pattern: '^[0-9a-f]{7,40}$',
      maxLength: 40,
      description: 'a lowercase hex commit SHA (7 to 40 digits)',
    }),
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    env: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 32_768 }), { maxProperties: 64 }),
    ),
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    ttl: Type.Optional(Duration),
  },
  closed,
);

export const PreviewStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  phase: Type.Optional(PreviewPhase),
  url: Type.Optional(Type.String()),
  intercept: Type.Optional(Type.String()),
  /** When the spec last changed (the TTL counts from here) and when the preview expires. */
  updatedAt: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  conditions: Type.Optional(Type.Array(Condition)),
});

const Metadata = Type.Object({
  name: Type.String({
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
    maxLength: 63,
    description: 'a DNS-1123 name: lowercase letters, digits and "-", at most 63 characters',
  }),
  namespace: Type.Optional(DnsLabel),
  creationTimestamp: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
  generation: Type.Optional(Type.Integer({ maximum: Number.MAX_SAFE_INTEGER })),
  // The API server's own limits: 63-character label values, 256 KiB of annotations in all.
  labels: Type.Optional(
    Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 63 }), { maxProperties: 256 }),
  ),
  annotations: Type.Optional(
    Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 262_144 }), { maxProperties: 256 }),
  ),
});

function resource<K extends string, S extends TSchema, T extends TSchema>(kind: K, spec: S, status: T) {
  return Type.Object({
    apiVersion: Type.Literal(API_VERSION),
    kind: Type.Literal(kind),
    metadata: Metadata,
    spec,
    status: Type.Optional(status),
  });
}

export const TrafficPolicySchema = resource('TrafficPolicy', TrafficPolicySpec, TrafficPolicyStatus);
export const PreviewSchema = resource('Preview', PreviewSpec, PreviewStatus);

/** Outside a cluster: maps `<service>/<version>` upstream keys to URLs. Not a CRD. */
export const GatewayConfigSchema = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('GatewayConfig'),
  metadata: Type.Optional(Type.Object({ name: Type.Optional(Type.String({ maxLength: 253 })) })),
  spec: Type.Object(
    {
      upstreams: Type.Record(
        Type.String({
          pattern: '^[a-z0-9-]+/[A-Za-z0-9_.-]+$',
          maxLength: 127,
          description: 'an upstream key <service>/<version>',
        }),
        Type.String({
          pattern: '^https?://[^\\s]+$',
          maxLength: 2048,
          description: 'an http:// or https:// URL',
        }),
        // A key that does not match is refused, not passed on unchecked with whatever value it has.
        { maxProperties: 4096, additionalProperties: false },
      ),
    },
    { additionalProperties: true },
  ),
});

export type TrafficPolicy = Static<typeof TrafficPolicySchema>;
export type TrafficPolicySpec = Static<typeof TrafficPolicySpec>;
export type Preview = Static<typeof PreviewSchema>;
export type PreviewSpec = Static<typeof PreviewSpec>;
export type GatewayConfig = Static<typeof GatewayConfigSchema>;
export type Target = Static<typeof Target>;
export type Intercept = Static<typeof Intercept>;
export type InterceptMatch = Static<typeof InterceptMatch>;
export type RateLimit = Static<typeof RateLimit>;
export type AppliesTo = Static<typeof AppliesTo>;
export type Condition = Static<typeof Condition>;
export type HttpMethod = Static<typeof HttpMethod>;

/** Defaults, in one place so the compiler, the docs and the CRD descriptions agree. */
export const DEFAULTS = {
  namespace: 'default',
  versionLabel: 'version',
  previewHeader: 'x-switchyard-preview',
  previewBaggageKey: 'switchyard-preview',
  stickyCookie: 'switchyard-canary',
  stickyMaxAge: '24h',
  mirrorPercent: 100,
  mirrorMethods: ['GET', 'HEAD', 'OPTIONS'] as HttpMethod[],
  mirrorMaxBodyBytes: 65536,
  appliesTo: 'all' as AppliesTo,
  previewTtl: '72h',
  maxPerPullRequest: 2,
  clusterDomain: 'cluster.local',
  upgrades: ['websocket'],
} as const;
