/**
 * Property tests as an attacker would write them (issue 27): mutated and generated YAML through the
 * whole offline pipeline (parse → validate → compile → render, and the gateway's snapshot). Whatever
 * the bytes, every step returns problems that name the file, or a result; nothing throws. Runs
 * SWITCHYARD_FUZZ_RUNS cases per property (default 2,000, a fixed seed so CI is repeatable; set
 * SWITCHYARD_FUZZ_SEED to explore).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compile } from '../core/compiler/compile.js';
import { renderIstio } from '../core/istio/render.js';
import { parseDocuments } from '../core/resources/load.js';
import { readResources } from '../core/resources/validate.js';
import { buildSnapshot, upstreamsOf } from '../gateway/snapshot.js';
import { EXAMPLE_FILES, EXAMPLES } from './support/cli.js';

const RUNS = Number(process.env.SWITCHYARD_FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.SWITCHYARD_FUZZ_SEED ?? 27);
const FILE = 'fuzz.yaml';

const examples = EXAMPLE_FILES.map((f) => readFileSync(join(EXAMPLES, `${f}.yaml`), 'utf8'));

/** The whole pipeline on one file's text: what a person gets from validate, render or a reload. */
function pipeline(text: string) {
  const loaded = parseDocuments(text, FILE);
  const { resources, problems } = readResources(loaded.documents);
  const all = [...loaded.problems, ...problems];
  const compiled = compile(resources, { sources: resources.sources });
  renderIstio(compiled.plan);
  const snapshot = buildSnapshot(resources, upstreamsOf(resources), {
    source: FILE,
    generation: 1,
    now: new Date(0),
  });
  return { problems: [...all, ...compiled.problems, ...(snapshot.ok ? [] : snapshot.problems)] };
}

/** YAML's own special characters and constructs, the things a typo or an attacker inserts. */
const yamlPiece = fc.constantFrom(
  '*',
  '&',
  '!',
  '|',
  '>',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  '#',
  '---',
  '...',
  '\t',
  '\n',
  '"',
  "'",
  '%YAML 1.1\n',
  '<<: *a',
  '&a',
  '*a',
  '!!binary',
  '!!str',
  '? ',
  '- ',
  '~',
  '.inf',
  '-.inf',
  '.nan',
  '1e400',
  '0x',
  '\u0000',
  '\uFEFF',
  '\\',
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
);

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), piece: fc.oneof(yamlPiece, fc.string()) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 200 }),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : m.at % text.length;
  switch (m.kind) {
    case 'insert':
      return text.slice(0, at) + m.piece + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.length);
    case 'duplicate':
      return text.slice(0, at + m.length) + text.slice(at, at + m.length) + text.slice(at + m.length);
  }
}

/** Each problem names the file it came from; none is an internal error. */
function expectNamed(problems: { code: string; source?: { file: string } }[]) {
  for (const p of problems) {
    expect(p.code).not.toBe('SY_INTERNAL');
    if (p.source) expect(p.source.file).toBe(FILE);
  }
}

describe('property: hostile YAML through the whole pipeline', () => {
  it(`mutated examples end in problems or a plan, never a throw (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: examples.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 8 }),
        (which, mutations) => {
          const text = mutations.reduce(mutate, examples[which] as string);
          expectNamed(pipeline(text).problems);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`generated documents with a Switchyard kind end in problems or a plan (${RUNS} cases)`, () => {
    const kind = fc.constantFrom('TrafficPolicy', 'Preview', 'GatewayConfig', 'constructor', '__proto__');
    const value = fc.anything({ maxDepth: 4, withNullPrototype: true, withBigInt: false });
    fc.assert(
      fc.property(kind, value, value, (k, spec, metadata) => {
        const doc = { apiVersion: 'switchyard.dev/v1alpha1', kind: k, metadata, spec };
        const text = JSON.stringify(doc) ?? '';
        expectNamed(pipeline(text).problems);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`random text ends in problems, never a throw (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(yamlPiece, fc.string(), fc.string({ unit: 'binary' })), { maxLength: 40 }),
        (pieces) => {
          expectNamed(pipeline(pieces.join('')).problems);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
