/**
 * A progressive canary run (docs/progressive-delivery.md), as a pure function of
 * the policy's canary spec, the run's state as last written to `status.canary`, the clock, and,
 * when the run asks for one, an analysis of metrics. The controller does the I/O: it reads the
 * metrics the run asks for, writes the state back, records the events and promotes. Because the
 * whole state is in the status, a restarted controller or a new leader continues the run where it
 * was: a step is entered once (its weight and start time are written together) and left once.
 *
 * Rules, as Argo Rollouts' and Flagger's users expect them:
 * - each step holds its weight for `pause` (or until `switchyard canary resume` when it has none);
 * - with an analysis, metrics are read every `analysis.interval`; a step ends only when its hold
 *   is over and the newest analysis read during it passed;
 * - a metric outside its threshold range, or one that cannot be read, is a failure; at
 *   `failureLimit` failures in the run the canary is rolled back (weight 0);
 * - no data is neither: a canary that gets no traffic does not advance, and the status says so;
 * - after the last step the run is promoted (`autoPromote`) or holds for `canary promote`;
 * - `switchyard canary pause` holds the run at its step (analyses go on, and can still roll it
 *   back) until `canary resume`; a step's hold counts from its start, paused or not;
 * - a run that cannot be judged at all (an analysis, but no Prometheus to read it from) is
 *   `Failed` at weight 0 rather than exposing users to a canary nobody can judge; it starts
 *   afresh once it can be;
 * - a new canary version starts a new run.
 */
import { parseDurationMs } from '../common/duration.js';

export type RunPhase = 'Progressing' | 'Paused' | 'Succeeded' | 'RolledBack' | 'Failed';

export interface Threshold {
  min?: number;
  max?: number;
}

export type Verdict = 'pass' | 'fail' | 'no-data' | 'error';

export interface MetricReading {
  name: string;
  /** A number, null when the query returned no data, or why it could not be read. */
  value: number | null | { error: string };
  threshold: Threshold;
}

export interface JudgedMetric {
  name: string;
  value?: number;
  threshold: string;
  verdict: Verdict;
  error?: string;
}

export interface CanaryRun {
  /** The canary version this run is for; another version starts a new run. */
  version: string;
  phase: RunPhase;
  /** Index into the steps; steps.length once every step has passed. */
  step: number;
  weight: number;
  startedAt: string;
  stepStartedAt: string;
  failures: number;
  /** Every weight the run has set, in order of first use (sticky cookie classes need them). */
  weightsUsed: number[];
  /** One sentence: why it moved or why it waits. */
  message: string;
  /** When `switchyard canary pause` held the run (absent: not held by a person). */
  pausedAt?: string;
  lastAnalysis?: { at: string; passed: boolean; metrics: JudgedMetric[] };
}

export interface CanaryRunSpec {
  version: string;
  weight?: number;
  steps?: { weight: number; pause?: string }[];
  stepWeight?: number;
  maxWeight?: number;
  interval?: string;
  analysis?: {
    interval: string;
    failureLimit?: number;
    metrics: { name: string; thresholdRange: Threshold }[];
  };
  autoPromote?: boolean;
}

export const DEFAULT_FAILURE_LIMIT = 2;

export type RunEvent =
  | { type: 'Started'; message: string }
  | { type: 'StepAdvanced'; message: string }
  | { type: 'AnalysisFailed'; message: string }
  | { type: 'NoData'; message: string }
  | { type: 'RolledBack'; message: string }
  | { type: 'Promoted'; message: string }
  | { type: 'Completed'; message: string }
  | { type: 'Paused'; message: string }
  | { type: 'Resumed'; message: string }
  | { type: 'Failed'; message: string };

export interface Tick {
  /** The state to write (the same object when nothing changed). */
  run: CanaryRun;
  events: RunEvent[];
  /** Read the analysis metrics and call again with them. */
  needsAnalysis: boolean;
  /** Make the canary the stable version (autoPromote after the last step). */
  promote: boolean;
  /** When to look again; undefined: only a spec change or `canary resume` moves the run. */
  nextCheckMs?: number;
}

export interface Step {
  weight: number;
  /** How long the weight is held; undefined: until `switchyard canary resume`. */
  pauseMs?: number;
}

/** Whether the canary is moved by a run (steps or their short form) rather than by hand. */
export function isProgressive(c: CanaryRunSpec): boolean {
  return c.steps !== undefined || c.stepWeight !== undefined;
}

/** The steps of a run: as written, or stepWeight, 2 × stepWeight … maxWeight, each held `interval`. */
export function stepsOf(c: CanaryRunSpec): Step[] {
  if (c.steps)
    return c.steps.map((s) =>
      s.pause ? { weight: s.weight, pauseMs: parseDurationMs(s.pause) } : { weight: s.weight },
    );
  if (c.stepWeight === undefined) return [];
  const max = c.maxWeight ?? 100;
  const pauseMs = c.interval ? parseDurationMs(c.interval) : undefined;
  const out: Step[] = [];
  for (let w = c.stepWeight; w < max; w += c.stepWeight)
    out.push({ weight: w, ...(pauseMs !== undefined ? { pauseMs } : {}) });
  out.push({ weight: max, ...(pauseMs !== undefined ? { pauseMs } : {}) });
  return out;
}

/** The weight in force: the run's while one is under way for this version, else the spec's. */
export function effectiveCanaryWeight(c: CanaryRunSpec, run: CanaryRun | undefined): number {
  if (!isProgressive(c)) return c.weight ?? 0;
  if (!run || run.version !== c.version) return 0;
  if (run.phase === 'RolledBack' || run.phase === 'Failed') return 0;
  return run.weight;
}

export function describeThreshold(t: Threshold): string {
  if (t.min !== undefined && t.max !== undefined) return `${t.min}..${t.max}`;
  if (t.min !== undefined) return `>= ${t.min}`;
  return `<= ${t.max}`;
}

export function judge(m: MetricReading): JudgedMetric {
  const threshold = describeThreshold(m.threshold);
  if (m.value === null) return { name: m.name, threshold, verdict: 'no-data' };
  if (typeof m.value === 'object') return { name: m.name, threshold, verdict: 'error', error: m.value.error };
  const v = m.value;
  const ok =
    (m.threshold.min === undefined || v >= m.threshold.min) &&
    (m.threshold.max === undefined || v <= m.threshold.max);
  return { name: m.name, value: v, threshold, verdict: ok ? 'pass' : 'fail' };
}

const round = (v: number) => Math.round(v * 1000) / 1000;

function sayMetric(m: JudgedMetric): string {
  if (m.verdict === 'error') return `${m.name} could not be read (${m.error})`;
  if (m.verdict === 'no-data') return `${m.name} has no data`;
  return `${m.name} ${round(m.value as number)} (threshold ${m.threshold})`;
}

const ms = (iso: string) => Date.parse(iso);

const PAUSED_BY = 'paused by `switchyard canary pause` (analyses go on; `canary resume` moves on)';

function enterStep(run: CanaryRun, index: number, steps: Step[], now: number, message: string): CanaryRun {
  const step = steps[index] as Step;
  return {
    ...run,
    phase: step.pauseMs === undefined ? 'Paused' : 'Progressing',
    step: index,
    weight: step.weight,
    stepStartedAt: new Date(now).toISOString(),
    weightsUsed: run.weightsUsed.includes(step.weight) ? run.weightsUsed : [...run.weightsUsed, step.weight],
    message,
  };
}

function stepLabel(index: number, steps: Step[]): string {
  const s = steps[index];
  if (!s) return `the end of its ${steps.length} steps (${steps.at(-1)?.weight ?? 0}%)`;
  return `step ${index + 1} of ${steps.length} (${s.weight}%)`;
}

/** What one look at a run is given. */
export interface TickInput {
  canary: CanaryRunSpec;
  run: CanaryRun | undefined;
  now: number;
  analysis?: MetricReading[];
  resumeStep?: number;
  /** `switchyard canary abort` was asked for this run's version. */
  abort?: boolean;
  /** `switchyard canary pause` holds this run's version at its step. */
  paused?: boolean;
  /** Why the run cannot be judged at all (no Prometheus to read its analysis from). */
  cannotJudge?: string;
}

/** One look in progress: its input, the canary's steps, and the Events said so far. */
interface Look {
  input: TickInput;
  canary: CanaryRunSpec;
  steps: Step[];
  now: number;
  events: RunEvent[];
}

/**
 * One look at the run. Call with no analysis first; when `needsAnalysis` comes back, read the
 * metrics and call again with them (same `now`). `resumeStep` is the step a person resumed (the
 * value of `switchyard canary resume`): it moves a paused run on only from that step. Each step
 * below may end the look; the run goes through them in this order.
 */
export function runTick(input: TickInput): Tick {
  const look: Look = {
    input,
    canary: input.canary,
    steps: stepsOf(input.canary),
    now: input.now,
    events: [],
  };
  const run = input.run;
  if (input.cannotJudge !== undefined && run?.phase !== 'Succeeded' && run?.phase !== 'RolledBack')
    return failUnjudgeable(look, run, input.cannotJudge);
  // A new version (or none yet), or one that can be judged again: a new run from the first step.
  if (!run || run.version !== look.canary.version || run.phase === 'Failed') return startRun(look);
  // Succeeded but the spec still names the canary: the promotion did not land yet (a failed write,
  // a lost leader); asking again is harmless, as the promotion is idempotent.
  if (run.phase === 'Succeeded') return tickOf(look, run, { promote: true });
  if (run.phase === 'RolledBack') return tickOf(look, run);
  if (input.abort) return abortRun(look, run);
  const analysed = analyse(look, run);
  return 'next' in analysed ? holdOrAdvance(look, analysed.next) : analysed;
}

function tickOf(look: Look, run: CanaryRun, extra: Partial<Tick> = {}): Tick {
  return { run, events: look.events, needsAnalysis: false, promote: false, ...extra };
}

/** Said once, and the run stays at weight 0 until it can be judged. */
function failUnjudgeable(look: Look, run: CanaryRun | undefined, why: string): Tick {
  const { canary, now } = look;
  const message = `cannot be judged, so not started (weight 0): ${why}`;
  if (run?.version === canary.version && run.phase === 'Failed' && run.message === message)
    return tickOf(look, run);
  const iso = new Date(now).toISOString();
  const failed: CanaryRun = {
    ...(run?.version === canary.version
      ? run
      : {
          version: canary.version,
          step: 0,
          startedAt: iso,
          stepStartedAt: iso,
          failures: 0,
          weightsUsed: [],
        }),
    phase: 'Failed',
    weight: 0,
    message,
  };
  look.events.push({ type: 'Failed', message: `canary ${canary.version}: ${message}` });
  return tickOf(look, failed);
}

function startRun(look: Look): Tick {
  const { canary, steps, now } = look;
  const iso = new Date(now).toISOString();
  const fresh: CanaryRun = {
    version: canary.version,
    phase: 'Progressing',
    step: 0,
    weight: 0,
    startedAt: iso,
    stepStartedAt: iso,
    failures: 0,
    weightsUsed: [],
    message: '',
  };
  const run = enterStep(fresh, 0, steps, now, `started: ${stepLabel(0, steps)}`);
  look.events.push({ type: 'Started', message: `canary ${canary.version}: ${run.message}` });
  return tickOf(look, run, { nextCheckMs: nextCheck(canary, run, steps, now) });
}

function abortRun(look: Look, run: CanaryRun): Tick {
  const aborted: CanaryRun = {
    ...run,
    phase: 'RolledBack',
    weight: 0,
    message: `aborted at ${stepLabel(run.step, look.steps)} by \`switchyard canary abort\``,
  };
  look.events.push({ type: 'RolledBack', message: `canary ${look.canary.version}: ${aborted.message}` });
  return tickOf(look, aborted);
}

/**
 * The analysis, when one is due: asked for first (`needsAnalysis`), then judged. A failure counts
 * toward the limit, which rolls the run back; metrics without data hold the run where it is.
 * Returns the run to go on with, or the look's end.
 */
function analyse(look: Look, run: CanaryRun): Tick | { next: CanaryRun } {
  const { canary, steps, now, input } = look;
  const analysis = canary.analysis;
  const intervalMs = analysis ? parseDurationMs(analysis.interval) : undefined;
  const analysedAt =
    run.lastAnalysis && ms(run.lastAnalysis.at) >= ms(run.stepStartedAt)
      ? ms(run.lastAnalysis.at)
      : undefined;
  const due = intervalMs !== undefined && now >= (analysedAt ?? ms(run.stepStartedAt)) + intervalMs;
  if (!due) return { next: run };
  if (!input.analysis) return tickOf(look, run, { needsAnalysis: true });
  const metrics = input.analysis.map(judge);
  const bad = metrics.filter((m) => m.verdict === 'fail' || m.verdict === 'error');
  const quiet = metrics.filter((m) => m.verdict === 'no-data');
  const passed = bad.length === 0 && quiet.length === 0;
  const judged: CanaryRun = { ...run, lastAnalysis: { at: new Date(now).toISOString(), passed, metrics } };
  const at = stepLabel(run.step, steps);
  if (bad.length > 0) {
    const failures = judged.failures + 1;
    const limit = analysis?.failureLimit ?? DEFAULT_FAILURE_LIMIT;
    const why = bad.map(sayMetric).join('; ');
    look.events.push({ type: 'AnalysisFailed', message: `${at}: ${why} (failure ${failures} of ${limit})` });
    if (failures < limit)
      return { next: { ...judged, failures, message: `${at}: ${why} (failure ${failures} of ${limit})` } };
    const rolledBack: CanaryRun = {
      ...judged,
      failures,
      phase: 'RolledBack',
      weight: 0,
      message: `rolled back at ${at}: ${why}; ${failures} failed analyses reached the limit of ${limit}`,
    };
    look.events.push({ type: 'RolledBack', message: `canary ${canary.version}: ${rolledBack.message}` });
    return tickOf(look, rolledBack);
  }
  if (quiet.length > 0) {
    const message = `${at}: not advancing: ${quiet.map(sayMetric).join('; ')} (does the canary get traffic?)`;
    look.events.push({ type: 'NoData', message });
    return { next: { ...judged, message } };
  }
  return { next: { ...judged, message: `${at}: analysis passed (${metrics.map(sayMetric).join('; ')})` } };
}

/** Held by `canary pause`, lifted by its end, or the step over: the next step, or the run's end. */
function holdOrAdvance(look: Look, current: CanaryRun): Tick {
  const { canary, steps, now, input } = look;
  let run = current;
  const step = steps[run.step];
  if (input.paused && run.step < steps.length) {
    const pausedAt = run.pausedAt ?? new Date(now).toISOString();
    run = { ...run, phase: 'Paused', pausedAt, message: `${stepLabel(run.step, steps)}: ${PAUSED_BY}` };
    if (!input.run?.pausedAt)
      look.events.push({ type: 'Paused', message: `canary ${canary.version}: ${run.message}` });
    return tickOf(look, run, { nextCheckMs: nextCheck(canary, run, steps, now) });
  }
  if (run.pausedAt !== undefined) {
    const { pausedAt: _over, ...unpaused } = run;
    run = {
      ...unpaused,
      phase: step?.pauseMs === undefined ? 'Paused' : 'Progressing',
      message: `${stepLabel(run.step, steps)}: resumed`,
    };
    look.events.push({ type: 'Resumed', message: `canary ${canary.version}: ${run.message}` });
  }
  if (!stepOver(look, run)) return tickOf(look, run, { nextCheckMs: nextCheck(canary, run, steps, now) });
  const next = run.step + 1;
  if (next < steps.length) {
    run = enterStep(run, next, steps, now, `${stepLabel(run.step, steps)} passed: ${stepLabel(next, steps)}`);
    look.events.push({ type: 'StepAdvanced', message: `canary ${canary.version}: ${run.message}` });
    return tickOf(look, run, { nextCheckMs: nextCheck(canary, run, steps, now) });
  }
  return finishSteps(look, run);
}

/** A step with a pause is over once held that long (and, with an analysis, the last one passed); one without, when resumed. */
function stepOver(look: Look, run: CanaryRun): boolean {
  const step = look.steps[run.step];
  if (step === undefined) return false;
  if (step.pauseMs === undefined) return look.input.resumeStep === run.step;
  const lastPassed =
    run.lastAnalysis !== undefined &&
    ms(run.lastAnalysis.at) >= ms(run.stepStartedAt) &&
    run.lastAnalysis.passed;
  return (
    look.now - ms(run.stepStartedAt) >= step.pauseMs && (look.canary.analysis === undefined || lastPassed)
  );
}

/** Every step passed: promoted with autoPromote, else held for `canary promote`. */
function finishSteps(look: Look, run: CanaryRun): Tick {
  const { canary, steps } = look;
  if (canary.autoPromote) {
    const promoted: CanaryRun = {
      ...run,
      phase: 'Succeeded',
      step: steps.length,
      weight: 100,
      message: `every step passed: ${canary.version} promoted`,
    };
    look.events.push({ type: 'Promoted', message: `canary ${canary.version}: ${promoted.message}` });
    return tickOf(look, promoted, { promote: true });
  }
  const held: CanaryRun = {
    ...run,
    phase: 'Paused',
    step: steps.length,
    message: `every step passed: holding at ${run.weight}% for \`switchyard canary promote\``,
  };
  look.events.push({ type: 'Completed', message: `canary ${canary.version}: ${held.message}` });
  return tickOf(look, held);
}

/** When the run next needs a look: its next analysis, or the end of its step's hold. */
function nextCheck(canary: CanaryRunSpec, run: CanaryRun, steps: Step[], now: number): number | undefined {
  const times: number[] = [];
  const start = ms(run.stepStartedAt);
  if (canary.analysis) {
    const interval = parseDurationMs(canary.analysis.interval);
    const last = run.lastAnalysis && ms(run.lastAnalysis.at) >= start ? ms(run.lastAnalysis.at) : start;
    times.push(last + interval);
  }
  // A hold already over waits on the analysis (or a person), not on the clock.
  const step = steps[run.step];
  if (step?.pauseMs !== undefined && start + step.pauseMs > now) times.push(start + step.pauseMs);
  if (times.length === 0) return undefined;
  return Math.max(0, Math.min(...times) - now);
}
