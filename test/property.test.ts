/**
 * Property test: random valid policies and previews always compile and render into objects that
 * Istio's schemas and rules accept, the output never depends on input order, and explain agrees
 * with the rendered VirtualServices for requests built from each policy's own match values.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toYamlDocuments } from '../cli/output.js';
import { compile } from '../core/compiler/compile.js';
import { explainRequest, requestFrom } from '../core/compiler/explain.js';
import { renderIstio } from '../core/istio/render.js';
import { checkIstioRules } from './support/istio-rules.js';
import { istioCrdsPath, validateWithCrdFile, validateWithModels } from './support/istio-schemas.js';
import { hostOf, load, requestsFor, worldArb } from './support/random-policies.js';
import { evaluateVirtualServices } from './support/virtual-service-eval.js';

describe('property: random valid policies', () => {
  it('compile and render into objects Istio accepts, independent of input order (500 cases)', () => {
    const crds = istioCrdsPath();
    fc.assert(
      fc.property(worldArb, fc.integer(), (world, seed) => {
        const docs = world.flatMap((w) => [w.policy, ...w.previews]);
        const { resources, problems } = load(docs);
        expect(problems).toEqual([]);
        const compiled = compile(resources);
        expect(compiled.problems).toEqual([]);
        const rendered = renderIstio(compiled.plan);
        expect(rendered.problems).toEqual([]);
        for (const o of rendered.objects) {
          validateWithModels(o);
          if (crds) expect(validateWithCrdFile(o, crds)).toEqual([]);
        }
        expect(checkIstioRules(rendered.objects as never)).toEqual([]);

        // Input order does not matter: shuffle documents deterministically by the seed.
        const shuffled = [...docs].sort(
          (a, b) =>
            ((JSON.stringify(a).length * 31 + seed) % 97) - ((JSON.stringify(b).length * 31 + seed) % 97),
        );
        const again = renderIstio(compile(load(shuffled).resources).plan);
        expect(toYamlDocuments(again.objects)).toBe(toYamlDocuments(rendered.objects));

        // explain agrees with the rendered VirtualServices on requests built from the policies' own values.
        for (const w of world) {
          const host = hostOf(w);
          for (const headers of requestsFor(w)) {
            const e = explainRequest(compiled.plan, requestFrom({ host, headers }));
            const v = evaluateVirtualServices(rendered.objects as never, { host, headers });
            expect(e.route).toBe(v.route);
            expect(e.destinations.map((d) => [d.upstream, d.weight])).toEqual(
              v.destinations.map((d) => [d.upstream, d.weight]),
            );
          }
        }
      }),
      { numRuns: 500 },
    );
  }, 180_000);
});
