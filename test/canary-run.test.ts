/**
 * The progressive canary run as a pure function (core/canary/progression.ts), driven by a simulated
 * clock: a healthy run walks every step and is promoted; a failing one is rolled back at
 * failureLimit with the metric, its value and the threshold named; no data holds the run; a run
 * continued from its serialized state (a restarted controller) neither repeats nor skips a step.
 */
import { describe, expect, it } from 'vitest';
import {
  type CanaryRun,
  type CanaryRunSpec,
  effectiveCanaryWeight,
  type MetricReading,
  runTick,
  stepsOf,
  type Tick,
} from '../core/canary/progression.js';

const T0 = Date.parse('2026-11-29T12:00:00Z');

const spec = (extra: Partial<CanaryRunSpec> = {}): CanaryRunSpec => ({
  version: 'v2',
  steps: [
    { weight: 10, pause: '30s' },
    { weight: 50, pause: '30s' },
  ],
  analysis: {
    interval: '10s',
    failureLimit: 2,
    metrics: [
      { name: 'request-success-rate', thresholdRange: { min: 99 } },
      { name: 'request-duration', thresholdRange: { max: 500 } },
    ],
  },
  autoPromote: true,
  ...extra,
});

type Readings = (weight: number, at: number) => (number | null | { error: string })[];

/**
 * Runs the controller's loop: tick, read metrics when asked, write the state (as JSON, as the
 * status holds it), wait for the next check. Returns every tick and the weights in force.
 */
function simulate(
  canary: CanaryRunSpec,
  readings: Readings,
  opts: { until?: number; resumeAt?: Record<number, number>; pausedBetween?: [number, number] } = {},
) {
  let run: CanaryRun | undefined;
  let now = T0;
  const ticks: Tick[] = [];
  const weights: number[] = [];
  const resume = opts.resumeAt ?? {};
  for (let i = 0; i < 200 && now <= T0 + (opts.until ?? 600_000); i++) {
    const resumeStep =
      run && resume[run.step] !== undefined && now >= T0 + (resume[run.step] as number)
        ? run.step
        : undefined;
    const [from, to] = opts.pausedBetween ?? [Number.POSITIVE_INFINITY, 0];
    const paused = now >= T0 + from && now < T0 + to;
    let t = runTick({ canary, run, now, paused, ...(resumeStep !== undefined ? { resumeStep } : {}) });
    if (t.needsAnalysis) {
      const values = readings(t.run.weight, now);
      const analysis: MetricReading[] = (canary.analysis?.metrics ?? []).map((m, k) => ({
        name: m.name,
        value: values[k] ?? null,
        threshold: m.thresholdRange,
      }));
      t = runTick({
        canary,
        run,
        now,
        paused,
        analysis,
        ...(resumeStep !== undefined ? { resumeStep } : {}),
      });
      expect(t.needsAnalysis).toBe(false);
    }
    ticks.push(t);
    run = JSON.parse(JSON.stringify(t.run)) as CanaryRun; // written to status, read back
    if (weights.at(-1) !== effectiveCanaryWeight(canary, run))
      weights.push(effectiveCanaryWeight(canary, run));
    if (
      t.promote ||
      run.phase === 'RolledBack' ||
      (run.phase === 'Paused' && run.step >= stepsOf(canary).length)
    )
      break;
    now += t.nextCheckMs ?? 1000;
  }
  return { ticks, run: run as CanaryRun, weights, now, events: ticks.flatMap((t) => t.events) };
}

const healthy: Readings = () => [99.9, 120];

describe('progressive canary run', () => {
  it('expands the short form: stepWeight up to maxWeight, each held for interval', () => {
    expect(stepsOf({ version: 'v2', stepWeight: 20, maxWeight: 50, interval: '1m' })).toEqual([
      { weight: 20, pauseMs: 60_000 },
      { weight: 40, pauseMs: 60_000 },
      { weight: 50, pauseMs: 60_000 },
    ]);
    expect(stepsOf({ version: 'v2', stepWeight: 25, interval: '1m' }).map((s) => s.weight)).toEqual([
      25, 50, 75, 100,
    ]);
  });

  it('a healthy canary walks every step, each held for its pause with a passing analysis, and is promoted', () => {
    const { weights, run, events, now } = simulate(spec(), healthy);
    expect(weights).toEqual([10, 50, 100]);
    expect(run.phase).toBe('Succeeded');
    expect(run.weightsUsed).toEqual([10, 50]);
    expect(events.map((e) => e.type)).toEqual(['Started', 'StepAdvanced', 'Promoted']);
    expect(now - T0).toBe(60_000); // two holds of 30 s, no time lost between them
    // A promotion that did not land (the write failed) is asked for again, with no second event.
    const again = runTick({ canary: spec(), run, now: now + 1000 });
    expect(again.promote).toBe(true);
    expect(again.events).toEqual([]);
    expect(run.lastAnalysis?.metrics).toEqual([
      { name: 'request-success-rate', value: 99.9, threshold: '>= 99', verdict: 'pass' },
      { name: 'request-duration', value: 120, threshold: '<= 500', verdict: 'pass' },
    ]);
  });

  it('without autoPromote, holds at the last weight for `canary promote`', () => {
    const { run, ticks } = simulate(spec({ autoPromote: false }), healthy);
    expect(run).toMatchObject({ phase: 'Paused', weight: 50, step: 2 });
    expect(run.message).toMatch(/holding at 50% for `switchyard canary promote`/);
    expect(ticks.some((t) => t.promote)).toBe(false);
  });

  it('a canary failing a fifth of requests is rolled back within failureLimit intervals, naming the metric, value and threshold', () => {
    const failingFrom = T0 + 35_000; // during step 2
    const { run, weights, events, now } = simulate(spec(), (_w, at) => [at >= failingFrom ? 80 : 99.9, 120]);
    expect(run.phase).toBe('RolledBack');
    expect(effectiveCanaryWeight(spec(), run)).toBe(0);
    expect(weights).toEqual([10, 50, 0]);
    expect(now - failingFrom).toBeLessThanOrEqual(2 * 10_000);
    expect(run.message).toMatch(
      /rolled back at step 2 of 2 \(50%\): request-success-rate 80 \(threshold >= 99\); 2 failed analyses reached the limit of 2/,
    );
    expect(events.filter((e) => e.type === 'AnalysisFailed')).toHaveLength(2);
    expect(events.at(-1)?.type).toBe('RolledBack');
  });

  it('a metric that cannot be read is a failure, never a pass', () => {
    const { run } = simulate(spec(), () => [{ error: 'connection refused' }, 120]);
    expect(run.phase).toBe('RolledBack');
    expect(run.message).toMatch(/request-success-rate could not be read \(connection refused\)/);
  });

  it('no data holds the run and says why, without counting a failure', () => {
    const { run, weights, ticks } = simulate(spec(), () => [null, null], { until: 120_000 });
    expect(run).toMatchObject({ phase: 'Progressing', step: 0, weight: 10, failures: 0 });
    expect(weights).toEqual([10]);
    expect(run.message).toMatch(
      /not advancing: request-success-rate has no data; request-duration has no data \(does the canary get traffic\?\)/,
    );
    // It keeps looking once per analysis interval, never in a tight loop.
    expect(ticks.slice(1).every((t) => (t.nextCheckMs ?? 0) >= 1000)).toBe(true);
  });

  it('a step without a pause waits for `canary resume` of that very step', () => {
    const canary = spec({ steps: [{ weight: 20 }, { weight: 60, pause: '20s' }], analysis: undefined });
    const waiting = simulate(canary, healthy, { until: 100_000 });
    expect(waiting.run).toMatchObject({ phase: 'Paused', step: 0, weight: 20 });
    expect(waiting.ticks.at(-1)?.nextCheckMs).toBeUndefined();
    // A resume meant for another step does nothing.
    const stray = runTick({ canary, run: waiting.run, now: T0 + 5_000, resumeStep: 1 });
    expect(stray.run.step).toBe(0);
    const resumed = simulate(canary, healthy, { resumeAt: { 0: 50_000 } });
    expect(resumed.weights).toEqual([20, 60, 100]);
    expect(resumed.run.phase).toBe('Succeeded');
  });

  it('`canary pause` holds a run at its step (analyses go on) until resumed; a step ends no sooner than its hold', () => {
    // Paused 5 s into step 1 (30 s hold), resumed at 100 s.
    const { weights, run, events, ticks } = simulate(spec(), healthy, { pausedBetween: [5_000, 100_000] });
    expect(weights).toEqual([10, 50, 100]);
    expect(run.phase).toBe('Succeeded');
    expect(events.map((e) => e.type)).toEqual(['Started', 'Paused', 'Resumed', 'StepAdvanced', 'Promoted']);
    const held = ticks.filter((t) => t.run.phase === 'Paused');
    expect(held.length).toBeGreaterThan(3);
    expect(held.every((t) => t.run.step === 0 && t.run.weight === 10)).toBe(true);
    expect(held[0]?.run.message).toMatch(/^step 1 of 2 \(10%\): paused by `switchyard canary pause`/);
    // Analyses went on while it was held.
    const analysed = new Set(held.map((t) => t.run.lastAnalysis?.at));
    expect(analysed.size).toBeGreaterThan(3);
    // Held since the first look after the pause (the next analysis, at 10 s), and no longer after.
    expect(held.at(-1)?.run.pausedAt).toBe(new Date(T0 + 10_000).toISOString());
    expect(run.pausedAt).toBeUndefined();
  });

  it('a paused run still rolls back when its analyses fail', () => {
    const { run, events } = simulate(spec(), () => [50, 120], { pausedBetween: [0, 1_000_000] });
    expect(run).toMatchObject({ phase: 'RolledBack', weight: 0, step: 0 });
    expect(events.map((e) => e.type)).toEqual([
      'Started',
      'AnalysisFailed',
      'Paused',
      'AnalysisFailed',
      'RolledBack',
    ]);
  });

  it('a run that cannot be judged is Failed at weight 0, and starts afresh once it can be', () => {
    const why = 'the controller has no --prometheus';
    const failed = runTick({ canary: spec(), run: undefined, now: T0, cannotJudge: why });
    expect(failed.run).toMatchObject({ version: 'v2', phase: 'Failed', weight: 0 });
    expect(failed.run.message).toBe(`cannot be judged, so not started (weight 0): ${why}`);
    expect(failed.events.map((e) => e.type)).toEqual(['Failed']);
    expect(effectiveCanaryWeight(spec(), failed.run)).toBe(0);
    // Looked at again: the same state, no second event.
    const again = runTick({ canary: spec(), run: failed.run, now: T0 + 5_000, cannotJudge: why });
    expect(again.run).toBe(failed.run);
    expect(again.events).toEqual([]);
    // Mid-run: the canary's traffic stops.
    const running = runTick({ canary: spec(), run: undefined, now: T0 }).run;
    const stopped = runTick({ canary: spec(), run: running, now: T0 + 1_000, cannotJudge: why });
    expect(stopped.run).toMatchObject({ phase: 'Failed', weight: 0, weightsUsed: [10] });
    // Prometheus given: a new run from the first step.
    const fresh = runTick({ canary: spec(), run: stopped.run, now: T0 + 9_000 });
    expect(fresh.run).toMatchObject({ phase: 'Progressing', step: 0, weight: 10, failures: 0 });
    expect(fresh.events.map((e) => e.type)).toEqual(['Started']);
  });

  it('continued from its written state (a restarted controller), a run neither repeats nor skips a step', () => {
    const canary = spec();
    let now = T0;
    let t = runTick({ canary, run: undefined, now });
    const entered: number[] = [t.run.step];
    // Every tick's state goes through JSON, and each look is repeated as a second replica would.
    for (let i = 0; i < 50 && !t.promote; i++) {
      now += t.nextCheckMs ?? 1000;
      const stored = JSON.parse(JSON.stringify(t.run)) as CanaryRun;
      let next = runTick({ canary, run: stored, now });
      if (next.needsAnalysis)
        next = runTick({
          canary,
          run: stored,
          now,
          analysis: [
            { name: 'request-success-rate', value: 99.5, threshold: { min: 99 } },
            { name: 'request-duration', value: 80, threshold: { max: 500 } },
          ],
        });
      const again = runTick({ canary, run: JSON.parse(JSON.stringify(next.run)) as CanaryRun, now });
      expect(again.run.step).toBe(next.run.step); // the same moment again moves nothing
      expect(again.events.filter((e) => e.type === 'StepAdvanced')).toEqual([]);
      if (next.run.step !== entered.at(-1)) entered.push(next.run.step);
      t = next;
    }
    expect(entered).toEqual([0, 1, 2]);
  });

  it('`canary abort` rolls a run back at once, whatever its step', () => {
    const started = runTick({ canary: spec(), run: undefined, now: T0 }).run;
    const t = runTick({ canary: spec(), run: started, now: T0 + 1000, abort: true });
    expect(t.run).toMatchObject({ phase: 'RolledBack', weight: 0 });
    expect(t.run.message).toBe('aborted at step 1 of 2 (10%) by `switchyard canary abort`');
    expect(t.events.map((e) => e.type)).toEqual(['RolledBack']);
    // Also once every step passed, holding for `canary promote`.
    const holding = simulate(spec({ autoPromote: false }), healthy).run;
    const late = runTick({ canary: spec(), run: holding, now: T0 + 999_000, abort: true });
    expect(late.run).toMatchObject({ phase: 'RolledBack', weight: 0 });
    expect(late.run.message).toBe('aborted at the end of its 2 steps (50%) by `switchyard canary abort`');
  });

  it('a new canary version starts a new run; a manual canary keeps its own weight', () => {
    const done = simulate(spec(), healthy).run;
    const fresh = runTick({ canary: spec({ version: 'v3' }), run: done, now: T0 + 999_000 });
    expect(fresh.run).toMatchObject({
      version: 'v3',
      phase: 'Progressing',
      step: 0,
      weight: 10,
      failures: 0,
    });
    expect(fresh.events.map((e) => e.type)).toEqual(['Started']);
    expect(effectiveCanaryWeight({ version: 'v2', weight: 35 }, undefined)).toBe(35);
    expect(effectiveCanaryWeight(spec(), undefined)).toBe(0);
    expect(effectiveCanaryWeight(spec({ version: 'v3' }), done)).toBe(0);
  });
});
