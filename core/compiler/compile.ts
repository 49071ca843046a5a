/**
 * compile(policies, previews) → RoutePlan. Pure and deterministic: the same resources give a
 * byte-identical plan whatever order they came in (policies sort by namespace/name, previews by
 * pull request and commit; "newest" is decided by preview-age.ts, then by input order, as the
 * routing rules say for files). Every routing rule of docs/architecture.md lives here and nowhere else.
 */

import { effectiveCanaryWeight, isProgressive } from '../canary/progression.js';
import { parseDurationMs } from '../common/duration.js';
import { type Problem, problem, type Source } from '../common/errors.js';
import {
  DEFAULTS,
  HTTP_METHODS,
  type Intercept,
  type Preview,
  type Target,
  type TrafficPolicy,
} from '../resources/schema.js';
import { claimOrder, hostConflicts } from './hosts.js';
import { authorityMatch, baggageMemberRegex, methodMatch, type ValueMatch } from './matches.js';
import {
  canaryRunId,
  latestRef,
  pinnedRef,
  previewHost,
  serviceHost,
  subsetName,
  upstreamKey,
} from './names.js';
import type {
  Destination,
  DestinationRole,
  MirrorPlan,
  PolicyPlan,
  RateLimitPlan,
  RequestMatch,
  Route,
  RoutePlan,
  Subset,
} from './plan.js';
import { compareAge } from './preview-age.js';
import { drawDestinations, stickyRoutes } from './sticky.js';

export interface CompileOptions {
  clusterDomain?: string;
  /** Where each resource came from, so problems can name file and document. */
  sources?: WeakMap<object, Source>;
}

export interface CompileResult {
  plan: RoutePlan;
  problems: Problem[];
}

/** A Preview routes only when Ready; one read from a file (no status) describes what is deployed. */
export function isReady(p: Preview): boolean {
  return p.status?.phase === undefined || p.status.phase === 'Ready';
}

interface PreviewEntry {
  preview: Preview;
  ref: string;
  order: number;
}

/** Older first (preview-age.ts), then by input order. */
function byAge(a: PreviewEntry, b: PreviewEntry): number {
  return compareAge(a.preview, b.preview) || a.order - b.order;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class PolicyCompiler {
  readonly problems: Problem[] = [];
  private readonly ns: string;
  private readonly host: string;
  /** Ready previews of this policy, oldest first within each pull request. */
  private readonly pinned = new Map<string, PreviewEntry>();
  private readonly latest = new Map<string, PreviewEntry>();
  private readonly previewHosts: string[] = [];

  constructor(
    private readonly policy: TrafficPolicy,
    previews: PreviewEntry[],
    private readonly clusterDomain: string,
    private readonly source: Source | undefined,
  ) {
    this.ns = policy.metadata.namespace ?? DEFAULTS.namespace;
    this.host = serviceHost(policy.spec.service, this.ns, clusterDomain);
    for (const entry of [...previews].sort(byAge)) {
      if (this.pinned.has(entry.ref)) {
        this.problems.push(
          problem(
            'SY_DUPLICATE',
            `two Ready previews for ${entry.ref}: ${this.pinned.get(entry.ref)?.preview.metadata.name} and ${entry.preview.metadata.name}`,
            this.source,
            'spec.previews',
          ),
        );
        continue;
      }
      this.pinned.set(entry.ref, entry);
      this.latest.set(latestRef(entry.preview.spec.pullRequest), entry);
    }
  }

  private role(version: string): DestinationRole {
    const spec = this.policy.spec;
    return version === spec.stable ? 'stable' : version === spec.canary?.version ? 'canary' : 'version';
  }

  private version(version: string): Destination {
    return {
      upstream: upstreamKey(this.policy.spec.service, version),
      version,
      role: this.role(version),
      host: this.host,
      subset: subsetName(version),
      port: this.policy.spec.port,
    };
  }

  private preview(entry: PreviewEntry): Destination {
    const pinned = pinnedRef(entry.preview.spec.pullRequest, entry.preview.spec.commit);
    return {
      upstream: upstreamKey(this.policy.spec.service, pinned),
      version: pinned,
      role: 'preview',
      host: serviceHost(entry.preview.metadata.name, this.ns, this.clusterDomain),
      port: this.policy.spec.port,
    };
  }

  private target(t: Target, path: string): Destination | undefined {
    if (t.version !== undefined) return this.version(t.version);
    const ref = t.preview as string;
    const entry = this.pinned.get(ref) ?? this.latest.get(ref);
    if (!entry) {
      this.problems.push(
        problem(
          'SY_MISSING_PREVIEW',
          `no Ready Preview ${ref} of policy ${this.policy.metadata.name} (expected a Preview with spec.policy: ${this.policy.metadata.name} for that pull request and commit)`,
          this.source,
          path,
        ),
      );
      return undefined;
    }
    return this.preview(entry);
  }

  /** With `previews.requireToken`, the verified claim a preview route also needs. */
  private tokenClaim(ref: string): Pick<RequestMatch, 'claims'> {
    const header = this.policy.spec.previews?.header ?? DEFAULTS.previewHeader;
    return this.policy.spec.previews?.requireToken ? { claims: { [header]: { exact: ref } } } : {};
  }

  /** `x-switchyard-preview: <ref>` or the baggage member `switchyard-preview=<ref>`, or a verified claim. */
  private previewMatches(ref: string): RequestMatch[] {
    const header = this.policy.spec.previews?.header ?? DEFAULTS.previewHeader;
    if (this.policy.spec.previews?.requireToken) return [this.tokenClaim(ref)];
    return [
      { headers: { [header]: { exact: ref } } },
      { headers: { baggage: baggageMemberRegex(DEFAULTS.previewBaggageKey, { exact: ref }) } },
    ];
  }

  private interceptMatch(ic: Intercept): RequestMatch {
    const m = ic.match;
    const value: ValueMatch =
      m.exact !== undefined
        ? { exact: m.exact }
        : m.prefix !== undefined
          ? { prefix: m.prefix }
          : { regex: m.regex as string };
    if (m.header !== undefined)
      return ic.requireToken ? { claims: { [m.header]: value } } : { headers: { [m.header]: value } };
    return { headers: { baggage: baggageMemberRegex(m.baggage as string, value) } };
  }

  private previewRoutes(): Route[] {
    const routes: Route[] = [];
    const pinned = [...this.pinned.values()].sort(
      (a, b) => a.preview.spec.pullRequest - b.preview.spec.pullRequest || compareText(a.ref, b.ref),
    );
    const latest = [...this.latest.entries()].sort(
      (a, b) => a[1].preview.spec.pullRequest - b[1].preview.spec.pullRequest,
    );
    const domain = this.policy.spec.previews?.domain;
    if (domain) {
      const hostRoute = (ref: string, entry: PreviewEntry) => {
        const host = previewHost(ref, this.policy.metadata.name, domain);
        if (!host) {
          this.problems.push(
            problem(
              'SY_NAME_TOO_LONG',
              `preview URL label ${ref}--${this.policy.metadata.name} is longer than 63 characters; shorten the policy name`,
              this.source,
              'metadata.name',
            ),
          );
          return;
        }
        this.previewHosts.push(host);
        // requireToken covers the preview URL too: the host alone proves nothing.
        routes.push({
          name: `preview-host-${ref}`,
          kind: 'preview-host',
          matches: [{ authority: authorityMatch(host), ...this.tokenClaim(ref) }],
          destinations: [{ ...this.preview(entry), weight: 100 }],
        });
      };
      for (const e of pinned) hostRoute(e.ref, e);
      for (const [ref, e] of latest) hostRoute(ref, e);
    }
    for (const e of pinned) {
      routes.push({
        name: `preview-${e.ref}`,
        kind: 'preview-pinned',
        matches: this.previewMatches(e.ref),
        destinations: [{ ...this.preview(e), weight: 100 }],
      });
    }
    for (const [ref, e] of latest) {
      routes.push({
        name: `preview-${ref}`,
        kind: 'preview-latest',
        matches: this.previewMatches(ref),
        destinations: [{ ...this.preview(e), weight: 100 }],
      });
    }
    return routes;
  }

  private mirror(): { plan: MirrorPlan; methods: string[] } | undefined {
    const m = this.policy.spec.mirror;
    if (!m) return undefined;
    const destination = this.target(m.to, 'spec.mirror.to');
    if (!destination) return undefined;
    const methods = HTTP_METHODS.filter((x) => (m.methods ?? DEFAULTS.mirrorMethods).includes(x));
    return {
      plan: {
        destination,
        percent: m.percent ?? DEFAULTS.mirrorPercent,
        maxBodyBytes: m.maxBodyBytes ?? DEFAULTS.mirrorMaxBodyBytes,
      },
      methods,
    };
  }

  /** The weight in force: the spec's, or a progressive run's as its status says (core/canary/progression.ts). */
  private get canaryWeight(): number {
    const canary = this.policy.spec.canary;
    return canary ? effectiveCanaryWeight(canary, this.policy.status?.canary) : 0;
  }

  /** A progressive run's weights so far (sticky cookie classes need only these); none by hand. */
  private runWeights(): { weightsUsed?: readonly number[] } {
    const canary = this.policy.spec.canary;
    if (!canary || !isProgressive(canary)) return {};
    const run = this.policy.status?.canary;
    return { weightsUsed: run?.version === canary.version ? run.weightsUsed : [] };
  }

  /** The stable/canary routes (sticky classes, then the weighted split), with the mirror attached. */
  private splitRoutes(): Route[] {
    const spec = this.policy.spec;
    const stable = this.version(spec.stable);
    let routes: Route[];
    if (!spec.canary) {
      routes = [{ name: 'split', kind: 'split', matches: [], destinations: [{ ...stable, weight: 100 }] }];
    } else if (!spec.canary.sticky) {
      const w = this.canaryWeight;
      routes = [
        {
          name: 'split',
          kind: 'split',
          matches: [],
          destinations: [
            { ...stable, weight: 100 - w },
            { ...this.version(spec.canary.version), weight: w },
          ],
        },
      ];
    } else {
      const sticky = {
        weight: this.canaryWeight,
        run: canaryRunId(this.ns, this.policy.metadata.name, spec.canary.version),
        cookie: spec.canary.sticky.cookie ?? DEFAULTS.stickyCookie,
        maxAgeSeconds: Math.floor(parseDurationMs(spec.canary.sticky.maxAge ?? DEFAULTS.stickyMaxAge) / 1000),
        stable,
        canary: this.version(spec.canary.version),
        ...this.runWeights(),
      };
      routes = [
        ...stickyRoutes(sticky),
        { name: 'split', kind: 'split', matches: [], destinations: drawDestinations(sticky, sticky.weight) },
      ];
    }
    const mirror = this.mirror();
    if (!mirror) return routes;
    if (mirror.methods.length === HTTP_METHODS.length)
      return routes.map((r) => ({ ...r, mirror: mirror.plan }));
    // Only some methods are mirrored: a method-matched copy of each route carries the mirror, all
    // copies before all originals. A request of those methods takes the copy of the first route it
    // matches, any other the first original: as each copy before its original, but every rule with
    // a method comes first, so the Gateway API (which tries method matches first) keeps the order.
    const method = methodMatch(mirror.methods);
    return [
      ...routes.map((r) => ({
        ...r,
        name: `${r.name}-mirrored`,
        matches: r.matches.length === 0 ? [{ method }] : r.matches.map((m) => ({ ...m, method })),
        mirror: mirror.plan,
      })),
      ...routes,
    ];
  }

  private subsets(): Subset[] {
    const spec = this.policy.spec;
    const label = spec.versionLabel ?? DEFAULTS.versionLabel;
    const others = new Set<string>();
    for (const ic of spec.intercepts ?? []) if (ic.to.version) others.add(ic.to.version);
    if (spec.mirror?.to.version) others.add(spec.mirror.to.version);
    const names = [spec.stable, ...(spec.canary ? [spec.canary.version] : [])];
    for (const n of [...others].sort()) if (!names.includes(n)) names.push(n);
    const subsets = names.map((version) => ({ name: subsetName(version), labels: { [label]: version } }));
    const seen = new Map<string, string>();
    for (const [i, s] of subsets.entries()) {
      const other = seen.get(s.name);
      if (other !== undefined)
        this.problems.push(
          problem(
            'SY_DUPLICATE',
            `versions ${other} and ${names[i]} both become the Istio subset name ${s.name}; rename one`,
            this.source,
            'spec',
          ),
        );
      seen.set(s.name, names[i] as string);
    }
    return subsets;
  }

  private rateLimits(): RateLimitPlan[] {
    return (this.policy.spec.rateLimits ?? []).map((rl) => ({
      name: rl.name,
      key:
        rl.key.header !== undefined
          ? { type: 'header', header: rl.key.header }
          : rl.key.clientIp
            ? { type: 'clientIp' }
            : { type: 'route' },
      limit: rl.limit,
      windowSeconds: Math.max(1, Math.round(parseDurationMs(rl.window) / 1000)),
      appliesTo: rl.appliesTo ?? DEFAULTS.appliesTo,
      enforce: rl.enforce ?? true,
    }));
  }

  compile(): PolicyPlan {
    const spec = this.policy.spec;
    const name = this.policy.metadata.name;
    const intercepts: Route[] = [];
    (spec.intercepts ?? []).forEach((ic, i) => {
      const dest = this.target(ic.to, `spec.intercepts[${i}].to.preview`);
      if (dest)
        intercepts.push({
          name: `intercept-${ic.name}`,
          kind: 'intercept',
          matches: [this.interceptMatch(ic)],
          destinations: [{ ...dest, weight: 100 }],
        });
    });
    const routes = [...this.previewRoutes(), ...intercepts, ...this.splitRoutes()];
    const shortNames = [
      spec.service,
      `${spec.service}.${this.ns}`,
      `${spec.service}.${this.ns}.svc`,
      this.host,
    ];
    const plan: PolicyPlan = {
      name,
      namespace: this.ns,
      service: spec.service,
      port: spec.port,
      serviceHost: this.host,
      hosts: policyHosts(this.policy, this.clusterDomain),
      hostAliases: spec.hosts ? [...spec.hosts] : shortNames,
      gateways: [...(spec.gateways ?? [])],
      previewHosts: [...this.previewHosts],
      versionLabel: spec.versionLabel ?? DEFAULTS.versionLabel,
      stable: spec.stable,
      ...(spec.canary ? { canary: { version: spec.canary.version, weight: this.canaryWeight } } : {}),
      workloadLabels: spec.workloadLabels ? { ...spec.workloadLabels } : { app: spec.service },
      subsets: this.subsets(),
      routes,
      rateLimits: this.rateLimits(),
      upstreamProtocol: spec.upstreamProtocol ?? 'http1',
    };
    const previewGateway = spec.previews?.gateway ?? spec.gateways?.[0];
    if (plan.previewHosts.length > 0 && previewGateway) plan.previewGateway = previewGateway;
    if (spec.timeout) plan.timeoutMs = parseDurationMs(spec.timeout);
    if (spec.upgrades) plan.upgrades = [...spec.upgrades];
    if (spec.retries) {
      plan.retries = {
        attempts: spec.retries.attempts,
        on: [...(spec.retries.on ?? ['connect-failure', 'refused-stream', '503'])],
      };
      if (spec.retries.perTryTimeout)
        plan.retries.perTryTimeoutMs = parseDurationMs(spec.retries.perTryTimeout);
    }
    return plan;
  }
}

/** The hosts a policy serves: `spec.hosts` when set (it replaces the default), else the Service's FQDN. */
export function policyHosts(policy: TrafficPolicy, clusterDomain: string): string[] {
  return policy.spec.hosts
    ? [...policy.spec.hosts]
    : [serviceHost(policy.spec.service, policy.metadata.namespace ?? DEFAULTS.namespace, clusterDomain)];
}

/** GitHub repository names are case-insensitive. */
export function sameRepository(policyRepository: string | undefined, previewRepository: string): boolean {
  return policyRepository !== undefined && policyRepository.toLowerCase() === previewRepository.toLowerCase();
}

/**
 * TrafficPolicies and their Previews → the RoutePlan: the previews grouped by policy (those of
 * another repository, or of no policy, reported), each policy compiled, then rule 7 (one host,
 * one policy) checked across them.
 */
export function compile(
  input: { policies: readonly TrafficPolicy[]; previews: readonly Preview[] },
  options: CompileOptions = {},
): CompileResult {
  const clusterDomain = options.clusterDomain ?? DEFAULTS.clusterDomain;
  const sourceOf = (o: object) => options.sources?.get(o);
  const policies = [...input.policies].sort((a, b) => compareText(policyKey(a), policyKey(b)));
  const { byPolicy, problems } = groupPreviews(policies, input.previews, sourceOf);
  const plans: PolicyPlan[] = [];
  const compiled = new Map<string, TrafficPolicy>();
  for (const policy of policies) {
    const k = policyKey(policy);
    if (compiled.has(k)) continue;
    compiled.set(k, policy);
    const c = new PolicyCompiler(policy, byPolicy.get(k) ?? [], clusterDomain, sourceOf(policy));
    plans.push(c.compile());
    problems.push(...c.problems);
  }
  problems.push(...hostClaimProblems([...compiled.values()], plans, clusterDomain, sourceOf));
  return { plan: { policies: plans }, problems };
}

const keyOf = (ns: string | undefined, name: string) => `${ns ?? DEFAULTS.namespace}/${name}`;
const policyKey = (p: TrafficPolicy) => keyOf(p.metadata.namespace, p.metadata.name);

/**
 * The Ready previews of each policy, in input order. A policy defined twice, a preview of another
 * repository than its policy takes (anyone can open a pull request there) and one of no policy are
 * reported.
 */
function groupPreviews(
  policies: TrafficPolicy[],
  previews: readonly Preview[],
  sourceOf: (o: object) => Source | undefined,
): { byPolicy: Map<string, PreviewEntry[]>; problems: Problem[] } {
  const problems: Problem[] = [];
  const byPolicy = new Map<string, PreviewEntry[]>();
  for (const p of policies) {
    const k = policyKey(p);
    if (byPolicy.has(k))
      problems.push(
        problem('SY_DUPLICATE', `TrafficPolicy ${k} is defined twice`, sourceOf(p), 'metadata.name'),
      );
    byPolicy.set(k, []);
  }
  const policyByKey = new Map(policies.map((p) => [policyKey(p), p]));
  previews.forEach((preview, order) => {
    const k = keyOf(preview.metadata.namespace, preview.spec.policy);
    const list = byPolicy.get(k);
    const wanted = policyByKey.get(k)?.spec.previews?.repository;
    if (list && !sameRepository(wanted, preview.spec.repository)) {
      problems.push(
        problem(
          'SY_REPOSITORY_MISMATCH',
          `Preview ${keyOf(preview.metadata.namespace, preview.metadata.name)} is of repository ${preview.spec.repository}, but TrafficPolicy ${k} takes previews ${wanted ? `of ${wanted} only (spec.previews.repository)` : 'of no repository (spec.previews.repository is not set)'}`,
          sourceOf(preview),
          'spec.repository',
        ),
      );
      return;
    }
    if (!list) {
      problems.push(
        problem(
          'SY_MISSING_POLICY',
          `no TrafficPolicy ${k} for this Preview`,
          sourceOf(preview),
          'spec.policy',
        ),
      );
      return;
    }
    if (isReady(preview))
      list.push({ preview, ref: pinnedRef(preview.spec.pullRequest, preview.spec.commit), order });
  });
  return { byPolicy, problems };
}

/**
 * Rule 7: a host belongs to one policy, the first in claim order (oldest, then namespace/name); a
 * later one that overlaps it, as Istio resolves hosts (short names, FQDNs, wildcards), is reported.
 */
function hostClaimProblems(
  policies: TrafficPolicy[],
  plans: PolicyPlan[],
  clusterDomain: string,
  sourceOf: (o: object) => Source | undefined,
): Problem[] {
  const planOf = new Map(plans.map((p) => [`${p.namespace}/${p.name}`, p]));
  const planFor = (policy: TrafficPolicy) => planOf.get(policyKey(policy)) as PolicyPlan;
  const conflicts = hostConflicts(
    [...policies].sort(claimOrder),
    (policy) => {
      const plan = planFor(policy);
      return { hosts: [...plan.hosts, ...plan.previewHosts], namespace: plan.namespace };
    },
    clusterDomain,
  );
  return [...conflicts].map(([policy, held]) => {
    const owner = planFor(held.owner);
    return problem(
      'SY_HOST_CONFLICT',
      `host ${held.mine} overlaps ${held.host}, which TrafficPolicy ${owner.namespace}/${owner.name} already serves (it is older, or first by name); a host belongs to one policy`,
      sourceOf(policy),
      'spec.hosts',
    );
  });
}
