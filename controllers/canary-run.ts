/**
 * The progressive canary of one TrafficPolicy, moved on (core/canary/progression.ts decides, this does the
 * I/O): the run's state is read from and written to `status.canary`, the analysis metrics are read
 * from Prometheus when the run asks, each transition is an Event, and the end of a successful run
 * with `autoPromote` makes the canary the stable version (the merge patch `canary promote` makes).
 * The weight itself is not written into the spec: the compiler reads it from the status (both
 * backends), so a GitOps owner of the spec never fights the run. The caller re-reconciles the
 * policy's routes when the weight in force changes, and looks again after `requeueAfterMs`.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type CanaryRun,
  effectiveCanaryWeight,
  isProgressive,
  type MetricReading,
  runTick,
} from '../core/canary/progression.js';
import { builtinQuery, fillQuery, type MetricSeries } from '../core/canary/queries.js';
import { formatProblem } from '../core/common/errors.js';
import { serviceHost, subsetName, versionServiceName } from '../core/compiler/names.js';
import { REASON } from '../core/resources/conditions.js';
import {
  CANARY_ABORT_ANNOTATION,
  CANARY_PAUSE_ANNOTATION,
  CANARY_RESUME_ANNOTATION,
} from '../core/resources/labels.js';
import { DEFAULTS, RESOURCE, type TrafficPolicy } from '../core/resources/schema.js';
import { readLiveResource } from '../core/resources/validate.js';
import type { Kube } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Backend } from './backends/backend.js';
import type { MetricsReader } from './canary-metrics.js';

export interface CanaryRunOptions {
  events: EventRecorder;
  /** Where analysis metrics are read (the controller's --prometheus); absent: every read fails. */
  metrics?: MetricsReader;
  /** The backend of the policy: it tells when a version can take requests. */
  backend: Backend;
  /** The series the built-in analysis metrics read. */
  series: MetricSeries;
  now?: () => number;
  /**
   * Runs already told they wait for their version's endpoints (`namespace/name@version`), kept by
   * the caller across reconciles so a wait is one Event, not one per look.
   */
  waiting?: Set<string>;
}

export interface CanaryRunResult {
  requeueAfterMs?: number;
  /** The weight in force changed: the policy's routes must be written again. */
  weightChanged: boolean;
  /** The run as written (for the canary gauges); undefined for a policy without one. */
  run?: CanaryRun;
}

type LivePolicy = TrafficPolicy & KubernetesObject & { status?: { canary?: CanaryRun } };

const WARNINGS = new Set(['AnalysisFailed', 'RolledBack', 'NoData', 'Failed']);
/** How soon a run that waits for its version to take requests looks again. */
const NOT_SERVING_WAIT_MS = 500;

/**
 * One look at a policy's canary run: held while the spec is invalid, cleared when weights are set
 * by hand again, else a tick of the run (with its analysis when due), held at weight 0 while the
 * version cannot take requests, then written: status, Events, and the promotion.
 */
export async function reconcileCanaryRun(
  kube: Kube,
  namespace: string,
  name: string,
  opts: CanaryRunOptions,
): Promise<CanaryRunResult> {
  const idle: CanaryRunResult = { weightChanged: false };
  const ref = {
    apiVersion: RESOURCE.TrafficPolicy.apiVersion,
    kind: RESOURCE.TrafficPolicy.kind,
    namespace,
    name,
  };
  const live = await kube.get<LivePolicy>(ref);
  if (!live || live.metadata?.deletionTimestamp) return idle;
  const canary = live.spec.canary;
  const run = live.status?.canary;
  if (!canary) return idle; // the last run stays in the status as what happened (promoted, say)
  const held = { ...idle, ...(run ? { run } : {}) };
  if (await holdWhileInvalid(live, canary.version, opts)) return held;
  if (!isProgressive(canary)) return clearRun(kube, live, run);
  const tick = await look(live, canary, run, opts);
  // The canary gets no share until something can answer for it: its first requests would be 503s
  // (and count against its analysis). The run looks again shortly.
  const waitKey = `${namespace}/${name}@${canary.version}`;
  const starting = effectiveCanaryWeight(canary, run) === 0 && effectiveCanaryWeight(canary, tick.run) > 0;
  const waitingFor = starting ? await opts.backend.versionNotServing(kube, live, canary.version) : undefined;
  if (waitingFor) {
    await recordOnce(
      opts,
      waitKey,
      live,
      'Normal',
      REASON.CanaryWaiting,
      `${canary.version} gets no traffic until ${waitingFor}`,
    );
    return { ...held, requeueAfterMs: NOT_SERVING_WAIT_MS };
  }
  opts.waiting?.delete(waitKey);
  await writeTick(kube, live, tick, run, opts);
  if (tick.promote) await kube.mergePatch(ref, { spec: { stable: canary.version, canary: null } });
  return {
    ...(tick.nextCheckMs !== undefined ? { requeueAfterMs: tick.nextCheckMs } : {}),
    weightChanged: effectiveCanaryWeight(canary, run) !== effectiveCanaryWeight(canary, tick.run),
    run: tick.run,
  };
}

/**
 * A spec the controller marks Invalid neither steps nor promotes: the run holds where it is until
 * the spec validates again (promotion would write the invalid spec's stable version). Said once.
 */
async function holdWhileInvalid(live: LivePolicy, version: string, opts: CanaryRunOptions): Promise<boolean> {
  const invalid = specProblems(live);
  if (!invalid) return false;
  await recordOnce(
    opts,
    `${live.metadata?.namespace}/${live.metadata?.name}@${version}#invalid@${live.metadata?.generation}`,
    live,
    'Warning',
    REASON.InvalidSpec,
    `the canary run of ${version} holds until the spec validates: ${invalid}`,
  );
  return true;
}

/** Weights set by hand again: the run's state goes. */
async function clearRun(kube: Kube, live: LivePolicy, run: CanaryRun | undefined): Promise<CanaryRunResult> {
  if (run) {
    const { group, version, plural } = RESOURCE.TrafficPolicy;
    const { canary: _gone, ...status } = live.status ?? {};
    await kube.replaceStatus(group, version, plural, { ...live, status } as KubernetesObject);
  }
  return { weightChanged: run !== undefined };
}

/** A tick of the run, with what a person asked by annotation, and its analysis when one is due. */
async function look(
  live: LivePolicy,
  canary: NonNullable<LivePolicy['spec']['canary']>,
  run: CanaryRun | undefined,
  opts: CanaryRunOptions,
) {
  const annotations = live.metadata?.annotations ?? {};
  const resumeStep = resumedStep(annotations[CANARY_RESUME_ANNOTATION], canary.version);
  const input = {
    canary,
    run,
    now: (opts.now ?? Date.now)(),
    abort: annotations[CANARY_ABORT_ANNOTATION] === canary.version,
    paused: annotations[CANARY_PAUSE_ANNOTATION] === canary.version,
    ...(resumeStep !== undefined ? { resumeStep } : {}),
    ...(canary.analysis && !opts.metrics
      ? { cannotJudge: 'the canary has an analysis, but the controller has no --prometheus to read it from' }
      : {}),
  };
  const tick = runTick(input);
  // (Without a reader the run is Failed before it ever asks for an analysis.)
  if (!tick.needsAnalysis || !opts.metrics) return tick;
  return runTick({
    ...input,
    analysis: await readMetrics(live, opts.metrics, opts.series, opts.backend.versionServices),
  });
}

/** The run onto the status when it changed, and one Event per transition. */
async function writeTick(
  kube: Kube,
  live: LivePolicy,
  tick: ReturnType<typeof runTick>,
  run: CanaryRun | undefined,
  opts: CanaryRunOptions,
): Promise<void> {
  const { group, version, plural } = RESOURCE.TrafficPolicy;
  if (JSON.stringify(tick.run) !== JSON.stringify(run))
    await kube.replaceStatus(group, version, plural, {
      ...live,
      status: { ...(live.status ?? {}), canary: tick.run },
    } as KubernetesObject);
  for (const e of tick.events)
    await opts.events.record(
      live,
      WARNINGS.has(e.type) ? 'Warning' : 'Normal',
      REASON[`Canary${e.type}`],
      e.message,
    );
}

/** An Event recorded once per `key` while the caller keeps `opts.waiting` (a wait is one Event, not one per look). */
async function recordOnce(
  opts: CanaryRunOptions,
  key: string,
  ...event: Parameters<EventRecorder['record']>
): Promise<void> {
  if (opts.waiting?.has(key)) return;
  opts.waiting?.add(key);
  await opts.events.record(...event);
}

/** What the validator finds wrong with the live spec (as the policy's reconcile reads it), or undefined. */
function specProblems(live: LivePolicy): string | undefined {
  const { problems } = readLiveResource(live);
  return problems.length > 0 ? problems.map(formatProblem).join('; ') : undefined;
}

/** The step (0-based) `canary resume` moved on, from `<version>@<step>`, for this run's version only. */
function resumedStep(value: string | undefined, version: string): number | undefined {
  const at = value?.lastIndexOf('@') ?? -1;
  if (!value || at < 0 || value.slice(0, at) !== version) return undefined;
  const step = Number(value.slice(at + 1));
  return Number.isInteger(step) && step > 0 ? step - 1 : undefined;
}

async function readMetrics(
  live: LivePolicy,
  metrics: MetricsReader,
  backend: MetricSeries,
  versionServices: boolean,
): Promise<MetricReading[]> {
  const canary = live.spec.canary as NonNullable<LivePolicy['spec']['canary']>;
  const analysis = canary.analysis as NonNullable<typeof canary.analysis>;
  const context = {
    namespace: live.metadata?.namespace as string,
    policy: live.metadata?.name as string,
    service: live.spec.service,
    port: live.spec.port,
    canarySubset: subsetName(canary.version),
    serviceFqdn: serviceHost(live.spec.service, live.metadata?.namespace as string, DEFAULTS.clusterDomain),
    ...(versionServices ? { canaryService: canaryServiceOf(live, canary.version) } : {}),
    stable: live.spec.stable,
    canary: canary.version,
    interval: analysis.interval,
  };
  return Promise.all(
    analysis.metrics.map(async (m): Promise<MetricReading> => {
      const query = m.query ? fillQuery(m.query, context) : builtinQuery(m.name, backend, context);
      const value: MetricReading['value'] =
        query === undefined ? { error: `${m.name} is not a built-in metric` } : await metrics.read(query);
      return { name: m.name, value, threshold: m.thresholdRange };
    }),
  );
}

/** The canary version's own Service, where the backend sends each version through one. */
function canaryServiceOf(live: LivePolicy, version: string): { name: string; fqdn: string } {
  const name = versionServiceName(live.spec.service, version);
  return { name, fqdn: serviceHost(name, live.metadata?.namespace as string, DEFAULTS.clusterDomain) };
}
