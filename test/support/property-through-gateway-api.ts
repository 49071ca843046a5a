/**
 * The mesh property sample as Gateway API routes, judged through a real Envoy: the requests built
 * from each policy's own match values (GET and POST, so a mirror limited to some methods ranks
 * above the intercepts) and its preview URLs, each compared with `explain`. A request whose route
 * the renderer left out (with a problem) is counted, not compared.
 */
import { compile } from '../../core/compiler/compile.js';
import { explainRequest, requestFrom } from '../../core/compiler/explain.js';
import type { RoutePlan } from '../../core/compiler/plan.js';
import { renderGatewayApi } from '../../core/gateway-api/render.js';
import { header, send } from './http.js';
import { type GeneratedPolicy, load, requestsFor, tokenClaimsFor } from './random-policies.js';

export interface SampleCase {
  host: string;
  method: string;
  headers: Record<string, string>;
  /** The claims of the token among the headers, for `explain` (the gateway verified it). */
  claims?: Record<string, string>;
}

/**
 * The sample compiled and rendered (experimental channel), and the routes left out;
 * `tokensVerified` when the Gateway verifies intercept tokens (Istio's objects are applied).
 */
export function renderSample(sample: GeneratedPolicy[], tokensVerified = false) {
  const docs = sample.flatMap((w) => [w.policy, ...w.previews]);
  const plan = compile(load(docs).resources).plan;
  const rendered = renderGatewayApi(plan, { channel: 'experimental', tokensVerified });
  const leftOut = new Set(rendered.problems.map((p) => /: route (\S+) /.exec(p.message)?.[1]));
  return { plan, objects: rendered.objects, leftOut };
}

export function sampleCases(sample: GeneratedPolicy[], plan: RoutePlan): SampleCase[] {
  const cases: SampleCase[] = [];
  for (const w of sample) {
    for (const headers of requestsFor(w))
      for (const method of ['GET', 'POST']) cases.push({ host: `${w.name}.example.com`, method, headers });
    const policy = plan.policies.find((p) => p.name === w.name && p.namespace === w.ns);
    for (const host of policy?.previewHosts ?? []) cases.push({ host, method: 'GET', headers: {} });
  }
  return cases;
}

/**
 * For each thing a token stands for in the sample (tokenClaimsFor), a GET and a POST with a token
 * minted for its policy: where specificity would reorder a token route (three claim headers)
 * and a plain intercept (one header), the plan's order must still hold.
 */
export async function tokenSampleCases(
  sample: GeneratedPolicy[],
  mint: (claim: { header: string; value: string; audience: string }) => Promise<string>,
): Promise<SampleCase[]> {
  const cases: SampleCase[] = [];
  for (const w of sample)
    for (const claim of tokenClaimsFor(w)) {
      const token = await mint({ ...claim, audience: `${w.ns}/${w.name}` });
      for (const method of ['GET', 'POST'])
        cases.push({
          host: `${w.name}.example.com`,
          method,
          headers: { 'x-switchyard-token': token },
          claims: { [claim.header]: claim.value },
        });
    }
  return cases;
}

/** Each case sent to `baseFor(case)`, against explain: the disagreements, and the counts. */
export async function compareWithExplain(
  plan: RoutePlan,
  cases: SampleCase[],
  leftOut: ReadonlySet<string | undefined>,
  baseFor: (c: SampleCase) => string,
): Promise<{ wrong: string[]; compared: number; notWritten: number }> {
  const wrong: string[] = [];
  let compared = 0;
  let notWritten = 0;
  for (const c of cases) {
    const e = explainRequest(plan, requestFrom(c));
    if (e.route && leftOut.has(e.route)) {
      notWritten++;
      continue;
    }
    compared++;
    const allowed = e.destinations.filter((d) => d.weight > 0).map((d) => d.upstream);
    const r = await send(baseFor(c), c);
    const got = header(r, 'x-switchyard-upstream');
    const ok =
      allowed.length === 0
        ? got === undefined && r.status === 404
        : got !== undefined && allowed.includes(got);
    if (!ok)
      wrong.push(
        `${c.method} ${c.host} ${JSON.stringify(c.headers)} -> ${r.status} ${got ?? '(none)'}; explain: ${e.route ?? 'no route'} ${JSON.stringify(allowed)}`,
      );
  }
  return { wrong, compared, notWritten };
}
