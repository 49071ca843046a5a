/**
 * The release engineer's canary commands. `set` server-side applies only spec.canary.weight with
 * its own field manager (switchyard-cli), so it composes with GitOps owners of the rest of the spec;
 * `promote` (the canary becomes stable) and `abort` (weight 0, stickiness cleared) change several
 * fields at once, with a merge patch that fails rather than overwrite a concurrent change;
 * `status` shows the target next to the split in force, as the backend that carries the policy
 * out reports it (Istio: read back from the VirtualService; gateway: what `gateway --kube` serves).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { backendOfStatus, type ControllerMode } from '../controllers/backends/index.js';
import { type CanaryRun, effectiveCanaryWeight, isProgressive, stepsOf } from '../core/canary/progression.js';
import { parseDurationMs } from '../core/common/duration.js';
import { REASON } from '../core/resources/conditions.js';
import {
  CANARY_ABORT_ANNOTATION,
  CANARY_PAUSE_ANNOTATION,
  CANARY_RESUME_ANNOTATION,
} from '../core/resources/labels.js';
import { API_VERSION } from '../core/resources/schema.js';
import type { Kube } from '../kube/client.js';
import { COMPONENT } from '../kube/events.js';
import { type CliIO, EXIT_OK } from './io.js';
import {
  alignedRows,
  changePolicy,
  invalid,
  kubeFromCli,
  type NamedArgCommand,
  type NamedCommand,
  noPolicy,
  readPolicy,
  type ShowCommand,
} from './kube-cli.js';

export const canarySetCommand: NamedArgCommand = async (
  name,
  weightText,
  opts,
  io,
  kube = kubeFromCli(opts),
) => {
  const weight = Number(weightText);
  if (!/^[0-9]+$/.test(weightText) || weight > 100)
    return invalid(io, `weight: expected an integer from 0 to 100 (got ${JSON.stringify(weightText)})`);
  const policy = await readPolicy(kube, opts.namespace, name);
  if (!policy) return noPolicy(io, opts.namespace, name);
  if (!policy.spec.canary?.version)
    return invalid(
      io,
      `TrafficPolicy ${opts.namespace}/${name} has no canary: set spec.canary.version first`,
    );
  if (isProgressive(policy.spec.canary))
    return invalid(
      io,
      `TrafficPolicy ${opts.namespace}/${name}: canary ${policy.spec.canary.version} is moved by its steps; use canary resume or abort (or remove the steps to set weights by hand)`,
    );
  await kube.apply(
    {
      apiVersion: API_VERSION,
      kind: 'TrafficPolicy',
      metadata: { name, namespace: opts.namespace },
      spec: { canary: { version: policy.spec.canary.version, weight } },
    } as never,
    'switchyard-cli',
    true,
  );
  io.stdout(
    `${opts.namespace}/${name}: canary ${policy.spec.canary.version} weight ${policy.spec.canary.weight} -> ${weight}\n`,
  );
  return EXIT_OK;
};

/** The canary becomes stable; the canary section goes (stickiness with it). */
export const canaryPromoteCommand: NamedCommand = (name, opts, io, kube = kubeFromCli(opts)) =>
  changePolicy(kube, { namespace: opts.namespace, name }, io, (policy) => {
    const canary = policy.spec.canary?.version;
    if (!canary) return { refused: `TrafficPolicy ${opts.namespace}/${name} has no canary to promote` };
    return {
      patch: { stable: canary, canary: null },
      done: `${canary} promoted to stable (was ${policy.spec.stable}); no canary now`,
    };
  });

/** The progressive run the controller last wrote (status.canary), if any. */
const runOf = (policy: { status?: unknown }): CanaryRun | undefined =>
  (policy.status as { canary?: CanaryRun } | undefined)?.canary;

/** One metric of an analysis, as `status` and `watch` print it. */
const describeMetric = (m: NonNullable<CanaryRun['lastAnalysis']>['metrics'][number]) =>
  `${m.name} ${m.value === undefined ? '-' : Math.round(m.value * 1000) / 1000} (threshold ${m.threshold}) ${m.verdict}${m.error ? `: ${m.error}` : ''}`;

/** The last analysis as a table under the run: metric, value, threshold, verdict. */
function analysisTable(analysis: CanaryRun['lastAnalysis']): string[] {
  if (!analysis) return [];
  const rows = analysis.metrics.map((m) => [
    m.name,
    m.value === undefined ? '-' : String(Math.round(m.value * 1000) / 1000),
    m.threshold,
    m.error ? `${m.verdict}: ${m.error}` : m.verdict,
  ]);
  return [
    `analysis:  ${analysis.at}, ${analysis.passed ? 'passed' : 'not passed'}`,
    ...alignedRows(['METRIC', 'VALUE', 'THRESHOLD', 'VERDICT'], rows).map((l) => `           ${l}`),
  ];
}

/** Asks the controller for a change to a progressive run, by annotations it watches (null removes one). */
async function askRun(
  kube: Kube,
  at: { namespace: string; name: string },
  io: CliIO,
  annotations: Record<string, string | null>,
  done: string,
): Promise<number> {
  await kube.mergePatch(
    { apiVersion: API_VERSION, kind: 'TrafficPolicy', namespace: at.namespace, name: at.name },
    { metadata: { annotations } },
  );
  io.stdout(`${at.namespace}/${at.name}: ${done}\n`);
  return EXIT_OK;
}

/** The run of the policy's progressive canary now, or why there is none to act on. */
async function currentRun(
  kube: Kube,
  namespace: string,
  name: string,
  verb: string,
): Promise<{ run: CanaryRun; steps: number } | { refused: string } | undefined> {
  const policy = await readPolicy(kube, namespace, name);
  if (!policy) return undefined;
  const canary = policy.spec.canary;
  const run = runOf(policy);
  if (!canary || !isProgressive(canary) || !run || run.version !== canary.version)
    return { refused: `TrafficPolicy ${namespace}/${name} has no progressive canary run to ${verb}` };
  return { run, steps: stepsOf(canary).length };
}

/**
 * A run held by `canary pause`, or paused at a step without a pause, moves on: the hold is lifted,
 * and a step without a pause ends (the annotation names the run and step, so it moves nothing else).
 */
export const canaryResumeCommand: NamedCommand = (name, opts, io, kube = kubeFromCli(opts)) =>
  askCurrentRun(kube, name, opts, io, {
    verb: 'resume',
    applies: (run) => run.phase === 'Paused',
    annotations: (run) => ({
      [CANARY_PAUSE_ANNOTATION]: null,
      [CANARY_RESUME_ANNOTATION]: `${run.version}@${run.step + 1}`,
    }),
    told: (run) => `canary ${run.version} resumed from step ${run.step + 1} (${run.weight}%)`,
  });

/** Holds a progressive run at its step until `canary resume` (its analyses go on). */
export const canaryPauseCommand: NamedCommand = (name, opts, io, kube = kubeFromCli(opts)) =>
  askCurrentRun(kube, name, opts, io, {
    verb: 'pause',
    applies: (run) => run.phase === 'Progressing' || run.phase === 'Paused',
    annotations: (run) => ({ [CANARY_PAUSE_ANNOTATION]: run.version }),
    told: (run) =>
      `canary ${run.version}: pause asked; the run holds at step ${run.step + 1} (${run.weight}%) until \`canary resume\``,
  });

type CurrentRun = NonNullable<Exclude<Awaited<ReturnType<typeof currentRun>>, { refused: string }>>['run'];

/** Asks the controller, by annotation, to pause or resume the run in progress at one of its steps. */
async function askCurrentRun(
  kube: ReturnType<typeof kubeFromCli>,
  name: string,
  opts: Parameters<NamedCommand>[1],
  io: CliIO,
  ask: {
    verb: 'pause' | 'resume';
    applies: (run: CurrentRun) => boolean;
    annotations: (run: CurrentRun) => Record<string, string | null>;
    told: (run: CurrentRun) => string;
  },
): Promise<number> {
  const found = await currentRun(kube, opts.namespace, name, ask.verb);
  if (!found) return noPolicy(io, opts.namespace, name);
  if ('refused' in found) return invalid(io, found.refused);
  const { run, steps } = found;
  if (!ask.applies(run) || run.step >= steps)
    return invalid(
      io,
      `canary ${run.version} is ${run.phase} at ${run.weight}%: nothing to ${ask.verb} (${run.message})`,
    );
  return askRun(kube, { namespace: opts.namespace, name }, io, ask.annotations(run), ask.told(run));
}

/** All traffic back to stable: weight 0, and sticky cookies no longer hold clients on the canary. */
export const canaryAbortCommand: NamedCommand = async (name, opts, io, kube = kubeFromCli(opts)) => {
  const live = await readPolicy(kube, opts.namespace, name);
  const progressive = live?.spec.canary && isProgressive(live.spec.canary) ? live.spec.canary : undefined;
  if (progressive)
    return askRun(
      kube,
      { namespace: opts.namespace, name },
      io,
      { [CANARY_ABORT_ANNOTATION]: progressive.version },
      `canary ${progressive.version}: abort asked; the controller rolls the run back to weight 0`,
    );
  return changePolicy(kube, { namespace: opts.namespace, name }, io, (policy) => {
    const canary = policy.spec.canary;
    if (!canary?.version)
      return { refused: `TrafficPolicy ${opts.namespace}/${name} has no canary to abort` };
    const { sticky: _dropped, ...rest } = canary;
    return {
      patch: { canary: { ...rest, weight: 0, sticky: null } },
      done: `canary ${canary.version} aborted: weight ${canary.weight} -> 0${canary.sticky ? ', sticky cookies cleared' : ''}`,
    };
  });
};

export interface CanaryStatus {
  policy: string;
  stable: string;
  canary: string | null;
  targetWeight: number;
  /** Canary weight of the split in force, or null when none is (`note` says why). */
  observedWeight: number | null;
  /** What carries the policy out: `istio` or `gateway`. */
  backend?: ControllerMode;
  note?: string;
  ready: string;
  /**
   * Why a progressive canary has no run yet: the controller's latest `CanaryWaiting` Event for this
   * version ("v2 gets no traffic until …"), when the caller may read Events.
   */
  waiting?: string;
  /** A progressive canary's run, as the controller last wrote it (status.canary). */
  run?: {
    phase: string;
    step: number;
    steps: number;
    weight: number;
    failures: number;
    message: string;
    lastAnalysis?: CanaryRun['lastAnalysis'];
  };
}

export const canaryStatusCommand: ShowCommand = async (name, opts, io, kube = kubeFromCli(opts)) => {
  const policy = await readPolicy(kube, opts.namespace, name);
  if (!policy) return noPolicy(io, opts.namespace, name);
  // Asked of the backend that wrote the policy's objects (Istio or the Node gateway).
  const backend = backendOfStatus(policy.status);
  const inForce = backend
    ? await backend.splitInForce(kube, policy)
    : { canaryWeight: null, note: 'not reconciled yet' };
  const ready = policy.status?.conditions?.find((c) => c.type === 'Ready');
  const canary = policy.spec.canary;
  const run = runOf(policy);
  const current = canary && run?.version === canary.version ? run : undefined;
  const waiting =
    canary && isProgressive(canary) && !current
      ? await waitingEvent(kube, opts.namespace, policy, canary.version)
      : undefined;
  const status: CanaryStatus = {
    policy: `${opts.namespace}/${name}`,
    stable: policy.spec.stable,
    canary: canary?.version ?? null,
    targetWeight: canary ? effectiveCanaryWeight(canary, run) : 0,
    observedWeight: inForce.canaryWeight,
    ...(backend ? { backend: backend.mode } : {}),
    ...(inForce.note ? { note: inForce.note } : {}),
    ready: ready ? `${ready.status} (${ready.reason}): ${ready.message}` : 'Unknown: not reconciled yet',
    ...(waiting ? { waiting } : {}),
    ...(canary && current
      ? {
          run: {
            phase: current.phase,
            step: Math.min(current.step + 1, stepsOf(canary).length),
            steps: stepsOf(canary).length,
            weight: current.weight,
            failures: current.failures,
            message: current.message,
            ...(current.lastAnalysis ? { lastAnalysis: current.lastAnalysis } : {}),
          },
        }
      : {}),
  };
  if (opts.output === 'json') io.stdout(`${JSON.stringify(status, null, 2)}\n`);
  else if (opts.output === 'yaml') io.stdout(stringify(status));
  else {
    const observed =
      status.observedWeight === null ? `unknown (${status.note})` : `${status.observedWeight}%`;
    const note = status.observedWeight !== null && status.note ? ` (${status.note})` : '';
    const lines = [
      `policy:    ${status.policy}`,
      `stable:    ${status.stable}`,
      `canary:    ${status.canary ?? '(none)'}`,
      `weight:    target ${status.targetWeight}%, in force ${observed}${note}`,
      ...(status.backend ? [`backend:   ${status.backend}`] : []),
      `ready:     ${status.ready}`,
      ...(status.waiting ? [`run:       not started: ${status.waiting}`] : []),
      ...(status.run
        ? [
            `run:       ${status.run.phase}, step ${status.run.step} of ${status.run.steps} at ${status.run.weight}%, ${status.run.failures} failed analyses: ${status.run.message}`,
            ...analysisTable(status.run.lastAnalysis),
          ]
        : []),
    ];
    io.stdout(`${lines.join('\n')}\n`);
  }
  return EXIT_OK;
};

type EventObject = KubernetesObject & {
  involvedObject?: { uid?: string };
  reportingComponent?: string;
  reason?: string;
  message?: string;
  lastTimestamp?: string | Date;
};

/**
 * The message of the controller's latest `CanaryWaiting` Event for `version` of this policy (the
 * run waits for its version to answer, and says so once per wait). Undefined when there is none, or
 * when the caller may not list Events: the status is shown without it.
 */
async function waitingEvent(
  kube: Kube,
  namespace: string,
  policy: { metadata?: { uid?: string } },
  version: string,
): Promise<string | undefined> {
  let events: EventObject[];
  try {
    events = await kube.list<EventObject>('v1', 'Event', namespace);
  } catch {
    return undefined;
  }
  const time = (e: EventObject) => new Date(e.lastTimestamp ?? 0).getTime();
  return events
    .filter(
      (e) =>
        e.involvedObject?.uid === policy.metadata?.uid &&
        e.reportingComponent === COMPONENT &&
        e.reason === REASON.CanaryWaiting &&
        e.message?.startsWith(`${version} `),
    )
    .sort((a, b) => time(b) - time(a))[0]?.message;
}

/** `canary watch` ended with the run rolled back: pipelines waiting on a release can tell. */
export const EXIT_ROLLED_BACK = 3;
/** `canary watch` ended with a run that cannot be judged (Failed: the controller has no Prometheus). */
export const EXIT_RUN_FAILED = 4;

const BAR = 20;
function progressBar(step: number, steps: number): string {
  const done = steps === 0 ? 0 : Math.round((BAR * Math.min(step, steps)) / steps);
  return `[${'#'.repeat(done)}${'.'.repeat(BAR - done)}]`;
}

/**
 * Follows a progressive run until it ends, a line per change (time, phase, a bar of the steps, the
 * weight, the sentence, then the last analysis): exit 0 when it is promoted (or every step passed
 * and it holds for `canary promote`), EXIT_ROLLED_BACK when it is rolled back, EXIT_RUN_FAILED when
 * it cannot be judged, 2 when the policy has no progressive canary. A paused run is waited on.
 */
export async function canaryWatchCommand(
  name: string,
  opts: { namespace: string; kubeconfig?: string; interval: string },
  io: CliIO,
  kube: Kube = kubeFromCli(opts),
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<number> {
  const every = Math.max(100, parseDurationMs(opts.interval));
  let last = '';
  let version: string | undefined;
  for (;;) {
    const policy = await readPolicy(kube, opts.namespace, name);
    if (!policy) return noPolicy(io, opts.namespace, name);
    const canary = policy.spec.canary;
    const run = runOf(policy);
    version ??= canary?.version;
    // Promoted: the canary has left the spec, and the run for its version says so.
    if (!canary && run && run.version === version && run.phase === 'Succeeded') {
      io.stdout(
        `${new Date().toISOString().slice(11, 19)}  Succeeded  ${run.version} is stable now: ${run.message}\n`,
      );
      return EXIT_OK;
    }
    if (!canary || !isProgressive(canary))
      return invalid(io, `TrafficPolicy ${opts.namespace}/${name} has no progressive canary to watch`);
    const steps = stepsOf(canary).length;
    const current = run?.version === canary.version ? run : undefined;
    const line = current
      ? `${current.phase.padEnd(11)} ${progressBar(current.step, steps)} ${String(current.weight).padStart(3)}%  ${current.message}${(
          current.lastAnalysis?.metrics ?? []
        )
          .map((m) => `\n    ${describeMetric(m)}`)
          .join('')}`
      : `Waiting     ${progressBar(0, steps)}   0%  the controller has not started the run of ${canary.version} yet`;
    if (line !== last) {
      io.stdout(`${new Date().toISOString().slice(11, 19)}  ${line}\n`);
      last = line;
    }
    if (current?.phase === 'RolledBack') return EXIT_ROLLED_BACK;
    if (current?.phase === 'Failed') return EXIT_RUN_FAILED;
    if (current?.phase === 'Paused' && current.step >= steps) return EXIT_OK;
    await sleep(every);
  }
}
