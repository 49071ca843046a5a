/**
 * Raw documents into typed resources, or problems that say file, document, field path and what
 * was expected. Schema checks come from the TypeBox schemas through ajv; the checks JSON Schema
 * cannot say well (exactly-one-of, RE2 syntax, cross-field rules) follow, per document.
 * `switchyard validate`, `render`, the gateway's file loader and the controller all use this.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDurationMs } from '../common/duration.js';
import { type Problem, problem, type Source } from '../common/errors.js';
import { regexError } from '../common/regex.js';
import { CLAIM_HEADER_PREFIX, TOKEN_COOKIE } from '../tokens/intercept-token.js';
import type { RawDocument } from './load.js';
import {
  API_VERSION,
  BUILTIN_METRICS,
  DEFAULTS,
  type GatewayConfig,
  GatewayConfigSchema,
  type Intercept,
  type Preview,
  PreviewSchema,
  type RateLimit,
  type TrafficPolicy,
  TrafficPolicySchema,
} from './schema.js';

export interface Resources {
  policies: TrafficPolicy[];
  previews: Preview[];
  gatewayConfigs: GatewayConfig[];
  /** Where each resource came from, for problems found later (by the compiler). */
  sources: WeakMap<object, Source>;
}

export function emptyResources(): Resources {
  return { policies: [], previews: [], gatewayConfigs: [], sources: new WeakMap() };
}

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
const validators: Record<string, ValidateFunction> = {
  TrafficPolicy: ajv.compile(TrafficPolicySchema),
  Preview: ajv.compile(PreviewSchema),
  GatewayConfig: ajv.compile(GatewayConfigSchema),
};

/** `/spec/rateLimits/0/window` → `spec.rateLimits[0].window`. */
export function toFieldPath(pointer: string, extra?: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const part of parts) {
    if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function show(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function schemaErrorMessage(e: ErrorObject): { path: string; message: string } {
  const path = toFieldPath(e.instancePath);
  const expected = (e.parentSchema as { description?: string } | undefined)?.description;
  const got = ` (got ${show(e.data)})`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const parent = e.parentSchema as { properties?: object; patternProperties?: Record<string, unknown> };
      const props = Object.keys(parent.properties ?? {});
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const patterns = Object.keys(parent.patternProperties ?? {});
      return {
        path: toFieldPath(e.instancePath, key),
        message:
          props.length === 0 && patterns.length > 0
            ? `unknown key (expected a key matching ${patterns.join(' or ')})`
            : `unknown field (expected one of: ${props.join(', ')})`,
      };
    }
    case 'required': {
      const key = (e.params as { missingProperty: string }).missingProperty;
      return { path: toFieldPath(e.instancePath, key), message: 'required field is missing' };
    }
    case 'type':
      return { path, message: `expected ${(e.params as { type: string }).type}${got}` };
    case 'const':
      return {
        path,
        message: `expected ${show((e.params as { allowedValue: unknown }).allowedValue)}${got}`,
      };
    case 'enum':
      return {
        path,
        message: `expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}${got}`,
      };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return {
        path,
        message: `expected ${expected ?? 'a number'}: must be ${e.keyword.startsWith('min') || e.keyword === 'exclusiveMinimum' ? 'at least' : 'at most'} ${(e.params as { limit: number }).limit}${got}`,
      };
    case 'uniqueItems':
      return {
        path,
        message: `items must be unique (items ${(e.params as { j: number }).j} and ${(e.params as { i: number }).i} are equal)`,
      };
    case 'minItems':
      return { path, message: `expected at least ${(e.params as { limit: number }).limit} item(s)` };
    case 'maxItems':
      return { path, message: `expected at most ${(e.params as { limit: number }).limit} item(s)` };
    case 'maxProperties':
      return { path, message: `expected at most ${(e.params as { limit: number }).limit} entries` };
    case 'maxLength':
      return {
        path,
        message: `expected ${expected ?? 'a string'} of at most ${(e.params as { limit: number }).limit} characters (got ${typeof e.data === 'string' ? e.data.length : '?'})`,
      };
    default:
      return { path, message: `expected ${expected ?? e.message ?? 'a valid value'}${got}` };
  }
}

function schemaProblems(errors: ErrorObject[], source: Source): Problem[] {
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const e of errors) {
    const { path, message } = schemaErrorMessage(e);
    const k = `${path}\u0000${e.keyword}`;
    if (seen.has(k) || seen.has(`${path}\u0000*`)) continue;
    seen.add(k);
    // One message per field: a type error makes the pattern/range errors of that field moot.
    if (e.keyword === 'type') seen.add(`${path}\u0000*`);
    out.push(problem('SY_SCHEMA', message, source, path));
  }
  return out;
}

function exactlyOne(
  obj: Record<string, unknown>,
  keys: readonly string[],
  source: Source,
  path: string,
  out: Problem[],
): void {
  const present = keys.filter((k) => obj[k] !== undefined);
  if (present.length !== 1) {
    out.push(
      problem(
        'SY_ONE_OF',
        `expected exactly one of ${keys.join(', ')} (got ${present.length === 0 ? 'none' : present.join(' and ')})`,
        source,
        path,
      ),
    );
  }
}

/** What a progressive run needs beyond its schema (core/canary/progression.ts). */
function checkCanaryRun(c: NonNullable<TrafficPolicy['spec']['canary']>, source: Source): Problem[] {
  const out: Problem[] = [];
  const at = 'spec.canary';
  const bad = (path: string, message: string) =>
    out.push(problem('SY_INVALID_VALUE', message, source, `${at}.${path}`));
  if (c.steps && (c.stepWeight !== undefined || c.maxWeight !== undefined || c.interval !== undefined))
    out.push(
      problem('SY_ONE_OF', 'give steps, or stepWeight with interval (and maxWeight), not both', source, at),
    );
  if (c.stepWeight !== undefined && c.interval === undefined)
    bad('interval', 'stepWeight needs interval: how long each step holds its weight');
  if (c.stepWeight === undefined && (c.maxWeight !== undefined || (c.interval !== undefined && !c.steps)))
    bad('stepWeight', 'maxWeight and interval describe steps of stepWeight: set stepWeight');
  if (c.stepWeight !== undefined && c.maxWeight !== undefined && c.maxWeight < c.stepWeight)
    bad('maxWeight', `expected at least stepWeight (${c.stepWeight})`);
  const progressive = c.steps !== undefined || c.stepWeight !== undefined;
  if (c.analysis && !progressive)
    bad('analysis', 'an analysis judges the steps of a run: add steps (or stepWeight)');
  if (c.autoPromote !== undefined && !progressive)
    bad('autoPromote', 'promotes at the end of a run: add steps (or stepWeight)');
  if (!progressive && c.weight === undefined)
    out.push(
      problem(
        'SY_SCHEMA',
        'required field is missing (a weight from 0 to 100, or steps for a progressive run)',
        source,
        `${at}.weight`,
      ),
    );
  if (progressive && c.weight !== undefined)
    bad(
      'weight',
      'a progressive run sets the weight itself: remove weight (or remove the steps to set it by hand)',
    );
  c.analysis?.metrics.forEach((m, i) => {
    const path = `analysis.metrics[${i}]`;
    if (m.query === undefined && !(BUILTIN_METRICS as readonly string[]).includes(m.name))
      bad(
        `${path}.query`,
        `${m.name} is not a built-in metric (${BUILTIN_METRICS.join(', ')}): give its query`,
      );
    const { min, max } = m.thresholdRange;
    if (min === undefined && max === undefined) bad(`${path}.thresholdRange`, 'expected min, max or both');
    if (min !== undefined && max !== undefined && min > max)
      bad(`${path}.thresholdRange`, `min ${min} is above max ${max}`);
  });
  if (c.analysis && parseDurationMs(c.analysis.interval) < 1000)
    bad(
      'analysis.interval',
      `expected at least 1s (got ${c.analysis.interval}): Prometheus needs samples in it`,
    );
  return out;
}

/** W3C baggage values are baggage-octets: printable ASCII without space, `"`, `,`, `;` and `\`. */
const BAGGAGE_VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/;

/**
 * Names Switchyard keeps for itself: the token's cookie, h2c (never tunnelled), and the headers a
 * token verifier writes from a token's claims (`x-switchyard-claim-*`: an Istio gateway removes
 * what a client sends there, so a plain match on one would hold in the Node gateway only).
 */
function checkReservedNames(spec: TrafficPolicy['spec'], source: Source): Problem[] {
  const out: Problem[] = [];
  const claimHeader = (name: string | undefined, path: string) => {
    // Header names are lowercase by the schema.
    if (name?.startsWith(CLAIM_HEADER_PREFIX))
      out.push(
        problem(
          'SY_INVALID_VALUE',
          `${name}: headers named ${CLAIM_HEADER_PREFIX}* are written by the token verifier from a verified token's claims; match another header (with requireToken, the token stands for it)`,
          source,
          path,
        ),
      );
  };
  for (const [i, ic] of (spec.intercepts ?? []).entries())
    claimHeader(ic.match.header, `spec.intercepts[${i}].match.header`);
  claimHeader(spec.previews?.header, 'spec.previews.header');
  if (spec.canary?.sticky?.cookie === TOKEN_COOKIE)
    out.push(
      problem(
        'SY_INVALID_VALUE',
        `${TOKEN_COOKIE} is the intercept token's cookie: name the sticky cookie otherwise`,
        source,
        'spec.canary.sticky.cookie',
      ),
    );
  if (spec.upgrades?.includes('h2c'))
    out.push(
      problem(
        'SY_INVALID_VALUE',
        'h2c is never tunnelled: the gateway speaks HTTP/2 cleartext itself, and requests inside a tunnel would skip every rule',
        source,
        `spec.upgrades[${spec.upgrades.indexOf('h2c')}]`,
      ),
    );
  return out;
}

/** Switchyard's own checks of a policy, beyond its schema; each problem with its field path. */
function checkPolicy(p: TrafficPolicy, source: Source): Problem[] {
  const spec = p.spec;
  const out: Problem[] = [];
  if (spec.canary && spec.canary.version === spec.stable)
    out.push(
      problem(
        'SY_INVALID_VALUE',
        `canary version must differ from stable (${spec.stable})`,
        source,
        'spec.canary.version',
      ),
    );
  if (spec.canary) out.push(...checkCanaryRun(spec.canary, source));
  out.push(...checkReservedNames(spec, source));
  out.push(...checkIntercepts(spec.intercepts ?? [], source));
  if (spec.mirror) {
    exactlyOne(spec.mirror.to, ['version', 'preview'], source, 'spec.mirror.to', out);
    if (spec.mirror.to.version === spec.stable)
      out.push(
        problem(
          'SY_INVALID_VALUE',
          `a mirror must copy to another version than stable (${spec.stable})`,
          source,
          'spec.mirror.to.version',
        ),
      );
  }
  out.push(...checkRateLimits(spec.rateLimits ?? [], source));
  out.push(...durationsOverMaximum(spec, source));
  return out;
}

/** Intercepts: unique names, one match and one target each, RE2 syntax, token rules, baggage values. */
function checkIntercepts(intercepts: Intercept[], source: Source): Problem[] {
  const out: Problem[] = [];
  const names = new Set<string>();
  intercepts.forEach((ic, i) => {
    const at = `spec.intercepts[${i}]`;
    if (names.has(ic.name))
      out.push(problem('SY_DUPLICATE', `intercept name ${ic.name} is used twice`, source, `${at}.name`));
    names.add(ic.name);
    exactlyOne(ic.match, ['header', 'baggage'], source, `${at}.match`, out);
    exactlyOne(ic.match, ['exact', 'prefix', 'regex'], source, `${at}.match`, out);
    exactlyOne(ic.to, ['version', 'preview'], source, `${at}.to`, out);
    const err = ic.match.regex !== undefined ? regexError(ic.match.regex) : undefined;
    if (err)
      out.push(
        problem(
          'SY_INVALID_REGEX',
          `expected an RE2 regular expression: ${err}`,
          source,
          `${at}.match.regex`,
        ),
      );
    if (ic.match.baggage === undefined) return;
    if (ic.requireToken)
      out.push(
        problem(
          'SY_INVALID_VALUE',
          'requireToken works with header matches only: the token travels in that header',
          source,
          `${at}.requireToken`,
        ),
      );
    for (const k of ['exact', 'prefix'] as const) {
      const v = ic.match[k];
      if (v !== undefined && !BAGGAGE_VALUE.test(v))
        out.push(
          problem(
            'SY_INVALID_VALUE',
            `expected a W3C baggage value (no spaces, quotes, ",", ";" or "\\") (got ${show(v)})`,
            source,
            `${at}.match.${k}`,
          ),
        );
    }
  });
  return out;
}

/** Rate limits: unique names, one key each, no two with one key on the same destinations, a window of 1 s or more. */
function checkRateLimits(limits: RateLimit[], source: Source): Problem[] {
  const out: Problem[] = [];
  const limitNames = new Set<string>();
  const limitKeys = new Set<string>();
  limits.forEach((rl, i) => {
    const at = `spec.rateLimits[${i}]`;
    if (limitNames.has(rl.name))
      out.push(problem('SY_DUPLICATE', `rate limit name ${rl.name} is used twice`, source, `${at}.name`));
    limitNames.add(rl.name);
    exactlyOne(rl.key, ['clientIp', 'header', 'route'], source, `${at}.key`, out);
    const keyId = `${rl.appliesTo ?? DEFAULTS.appliesTo}/${rl.key.header ?? (rl.key.clientIp ? 'clientIp' : 'route')}`;
    if (limitKeys.has(keyId))
      out.push(
        problem(
          'SY_DUPLICATE',
          'two rate limits with the same key apply to the same destinations; merge them into one',
          source,
          `${at}.key`,
        ),
      );
    limitKeys.add(keyId);
    if (parseDurationMs(rl.window) < 1000)
      out.push(
        problem(
          'SY_INVALID_VALUE',
          `expected a window of at least 1s (got ${rl.window})`,
          source,
          `${at}.window`,
        ),
      );
  });
  return out;
}

const HOUR_MS = 3_600_000;
/**
 * Upper bounds on durations, each with the reason a person can act on. Without them a `timeout:
 * 600h` overflowed Node's timer (2^31 ms) and failed every request, and a TTL of years kept a
 * preview alive for good.
 */
const DURATION_MAXIMA: {
  at: string;
  maxMs: number;
  why: string;
  read(s: TrafficPolicy['spec']): string | undefined;
}[] = [
  {
    at: 'spec.timeout',
    maxMs: HOUR_MS,
    why: 'longer requests belong on a streaming path',
    read: (s) => s.timeout,
  },
  {
    at: 'spec.retries.perTryTimeout',
    maxMs: HOUR_MS,
    why: 'a try cannot outlast the request',
    read: (s) => s.retries?.perTryTimeout,
  },
  {
    at: 'spec.canary.sticky.maxAge',
    maxMs: 400 * 24 * HOUR_MS,
    why: 'browsers keep a cookie at most 400 days',
    read: (s) => s.canary?.sticky?.maxAge,
  },
  {
    at: 'spec.canary.interval',
    maxMs: 24 * HOUR_MS,
    why: 'a step is held at most a day',
    read: (s) => s.canary?.interval,
  },
  {
    at: 'spec.canary.analysis.interval',
    maxMs: HOUR_MS,
    why: 'metrics are read at least hourly',
    read: (s) => s.canary?.analysis?.interval,
  },
  {
    at: 'spec.previews.ttl',
    maxMs: 90 * 24 * HOUR_MS,
    why: 'a preview is not a release',
    read: (s) => s.previews?.ttl,
  },
];
const MAX_WINDOW_MS = 24 * HOUR_MS;

function durationsOverMaximum(spec: TrafficPolicy['spec'], source: Source): Problem[] {
  const over = (value: string, maxMs: number, why: string, at: string) =>
    parseDurationMs(value) > maxMs
      ? [
          problem(
            'SY_INVALID_VALUE',
            `expected at most ${maxMs / HOUR_MS}h (${why}) (got ${value})`,
            source,
            at,
          ),
        ]
      : [];
  return [
    ...(spec.canary?.steps ?? []).flatMap((step, i) =>
      step.pause
        ? over(step.pause, 24 * HOUR_MS, 'a step is held at most a day', `spec.canary.steps[${i}].pause`)
        : [],
    ),
    ...DURATION_MAXIMA.flatMap((m) => {
      const value = m.read(spec);
      return value ? over(value, m.maxMs, m.why, m.at) : [];
    }),
    ...(spec.rateLimits ?? []).flatMap((rl, i) =>
      over(rl.window, MAX_WINDOW_MS, 'counts live one window', `spec.rateLimits[${i}].window`),
    ),
  ];
}

/** A Preview's own TTL has the policy's maximum. */
function checkPreview(p: Preview, source: Source): Problem[] {
  const max = DURATION_MAXIMA.find((m) => m.at === 'spec.previews.ttl') as (typeof DURATION_MAXIMA)[number];
  return p.spec.ttl && parseDurationMs(p.spec.ttl) > max.maxMs
    ? [
        problem(
          'SY_INVALID_VALUE',
          `expected at most ${max.maxMs / HOUR_MS}h (${max.why}) (got ${p.spec.ttl})`,
          source,
          'spec.ttl',
        ),
      ]
    : [];
}

/** Upstream URLs that the schema's pattern lets through but that do not parse (`http://[::1`). */
function checkGatewayConfig(gc: GatewayConfig, source: Source): Problem[] {
  const out: Problem[] = [];
  for (const [key, url] of Object.entries(gc.spec.upstreams))
    if (!URL.canParse(url))
      out.push(
        problem(
          'SY_SCHEMA',
          `expected an http:// or https:// URL (got ${JSON.stringify(url.length > 60 ? `${url.slice(0, 57)}...` : url)}: it does not parse)`,
          source,
          toFieldPath('/spec/upstreams', key),
        ),
      );
  return out;
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return `a ${Array.isArray(value) ? 'list' : typeof value}`;
  const v = value as { apiVersion?: unknown; kind?: unknown };
  return `${String(v.apiVersion ?? '(no apiVersion)')} ${String(v.kind ?? '(no kind)')}`;
}

/** Validates every document; valid ones are added to the result with namespace defaults applied. */
export function readResources(documents: readonly RawDocument[]): {
  resources: Resources;
  problems: Problem[];
} {
  const resources = emptyResources();
  const problems: Problem[] = [];
  for (const { source, value } of documents) {
    const v = value as { apiVersion?: unknown; kind?: unknown };
    const kind = typeof v === 'object' && v !== null ? v.kind : undefined;
    // Own keys only: `kind: constructor` must not find Object's constructor.
    const validate =
      typeof kind === 'string' && v.apiVersion === API_VERSION && Object.hasOwn(validators, kind)
        ? validators[kind]
        : undefined;
    if (!validate) {
      problems.push(
        problem(
          'SY_UNKNOWN_KIND',
          `expected apiVersion ${API_VERSION} and kind TrafficPolicy, Preview or GatewayConfig (got ${describe(value)})`,
          source,
        ),
      );
      continue;
    }
    if (!validate(value)) {
      problems.push(...schemaProblems(validate.errors ?? [], source));
      continue;
    }
    if (kind === 'GatewayConfig') {
      const found = checkGatewayConfig(value as GatewayConfig, source);
      problems.push(...found);
      if (found.length > 0) continue;
      resources.gatewayConfigs.push(value as GatewayConfig);
      resources.sources.set(value as object, source);
      continue;
    }
    const res = value as TrafficPolicy | Preview;
    res.metadata.namespace ??= DEFAULTS.namespace;
    if (kind === 'TrafficPolicy') {
      const found = checkPolicy(res as TrafficPolicy, source);
      problems.push(...found);
      if (found.length > 0) continue;
      resources.policies.push(res as TrafficPolicy);
    } else {
      const found = checkPreview(res as Preview, source);
      problems.push(...found);
      if (found.length > 0) continue;
      resources.previews.push(res as Preview);
    }
    resources.sources.set(res, source);
  }
  return { resources, problems };
}

/**
 * A resource read from the API server, validated as a file's would be: `namespace/name` stands for
 * the file. The API server already checked the CRD schema; this adds what a schema cannot say.
 * client-node hands out Dates, and the schema reads JSON: hence the round trip.
 */
export function readLiveResource(live: {
  metadata?: { namespace?: string; name?: string };
}): ReturnType<typeof readResources> {
  const file = `${live.metadata?.namespace}/${live.metadata?.name}`;
  return readResources([{ source: { file, document: 1 }, value: JSON.parse(JSON.stringify(live)) }]);
}
