/**
 * `npm run bench:render`: compile + render 1,000 TrafficPolicies with 5,000 Previews. Budget
 * (load-tests/README.md): under 1 s on this machine, for the "typical" mix: every policy has a canary,
 * three intercepts (header, regex, baggage → preview), two rate limits, timeouts, retries and
 * five previews with URLs; one in five has a sticky canary and another one in five a GET-only
 * mirror. The "stress" mix turns both on for every policy, each canary a progressive run (whose
 * sticky cookie classes are only the weights the run used; one weighted by hand needs about 100 at
 * mid weights) and a method-limited mirror doubling every route; it is printed beside the budget,
 * not judged by it.
 * Prints the median and best of several runs after a warm-up; exits 1 when "typical" is over.
 */
import { performance } from 'node:perf_hooks';
import { compile } from '../core/compiler/compile.js';
import { renderIstio } from '../core/istio/render.js';
import { readResources } from '../core/resources/validate.js';
import { benchDocuments as documents, POLICIES } from './mix.js';

const BUDGET_MS = 1000;
const RUNS = 5;

function measure(label: string, stress: boolean): number {
  const raw = documents(stress);
  const t0 = performance.now();
  const { resources, problems } = readResources(
    raw.map((value, i) => ({ source: { file: 'bench', document: i + 1 }, value })),
  );
  const validateMs = performance.now() - t0;
  if (problems.length > 0) throw new Error(`bench input is invalid: ${problems[0]?.message}`);
  const times: number[] = [];
  const compileTimes: number[] = [];
  let objects = 0;
  let routes = 0;
  for (let run = 0; run <= RUNS; run++) {
    const start = performance.now();
    const compiled = compile(resources);
    const compiledAt = performance.now();
    const rendered = renderIstio(compiled.plan);
    const ms = performance.now() - start;
    if (compiled.problems.length + rendered.problems.length > 0)
      throw new Error('bench input did not compile');
    objects = rendered.objects.length;
    routes = compiled.plan.policies.reduce((n, p) => n + p.routes.length, 0);
    if (run > 0) {
      times.push(ms); // run 0 warms up the JIT
      compileTimes.push(compiledAt - start);
    }
  }
  times.sort((a, b) => a - b);
  compileTimes.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] as number;
  const compileMedian = compileTimes[Math.floor(compileTimes.length / 2)] as number;
  console.log(
    `${label.padEnd(8)} ${POLICIES} policies, ${resources.previews.length} previews -> ${objects} objects, ${routes} routes: median ${median.toFixed(0)} ms, best ${times[0]?.toFixed(0)} ms over ${RUNS} runs (compile ${compileMedian.toFixed(0)} ms of it; input schema validation ${validateMs.toFixed(0)} ms)`,
  );
  return median;
}

console.log(`compile + render (budget ${BUDGET_MS} ms for "typical")`);
const typical = measure('typical', false);
const stress = measure('stress', true);
console.log(
  `typical: ${typical < BUDGET_MS ? 'within' : 'OVER'} budget (${(typical / BUDGET_MS).toFixed(2)}x of 1 s); stress: ${(stress / BUDGET_MS).toFixed(2)}x of 1 s`,
);
process.exitCode = typical < BUDGET_MS ? 0 : 1;
