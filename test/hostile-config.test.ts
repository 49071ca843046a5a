/**
 * Configuration a careless or hostile author writes (issue 27): YAML that breaks the parser's own
 * rules, aliases with no anchor, billion-laughs aliases, a key that names an Object method, an
 * upstream URL that matches the schema's pattern but does not parse. `validate` exits 2 naming
 * the file; a running gateway keeps serving its last good plan through every one of them, and a
 * gateway started on one exits 2, not 1.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_NESTING, parseDocuments } from '../core/resources/load.js';
import { cli, tempFiles } from './support/cli.js';
import { eventually } from './support/gateway.js';
import { HOSTILE, webGateway } from './support/hostile-files.js';
import { header, send } from './support/http.js';
import { startProcess } from './support/process.js';
import { unusedPort } from './support/upstreams.js';

describe('validate: hostile files exit 2 with the file named', () => {
  for (const [name, text, says] of HOSTILE)
    it(name, async () => {
      const dir = tempFiles({ 'p.yaml': text });
      const r = await cli('validate', '-f', dir);
      expect(r.stderr).not.toContain('SY_INTERNAL');
      expect(r.code).toBe(2);
      const first = r.stderr.split('\n')[0] ?? '';
      expect(first.startsWith(`${join(dir, 'p.yaml')}:document `)).toBe(true);
      expect(r.stderr).toMatch(says);
    });
});

describe('the parser stops at the first error, within a bound', () => {
  it('a file broken on every line is one problem, naming the line', () => {
    for (const line of ['a: [b, c\n', '\tx: 1\n', 'k: 1\n', '- a\nb: c\n', 'a: "x\n', '- ['.repeat(500)]) {
      const r = parseDocuments(line.repeat(20_000), 'f.yaml');
      expect(r.documents).toEqual([]);
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]?.source).toEqual({ file: 'f.yaml', document: 1 });
      expect(r.problems[0]?.code).toBe('SY_YAML_PARSE');
      expect(r.problems[0]?.message).toMatch(/ \(line \d+, column \d+\)$/);
    }
  });

  it(`collections nested more than ${MAX_NESTING} deep are refused where they pass it`, () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}\n`;
    expect(parseDocuments(deep(MAX_NESTING - 1), 'f.yaml').problems).toEqual([]);
    expect(parseDocuments(deep(1_000_000), 'f.yaml').problems.map((p) => p.message)).toEqual([
      `YAML does not parse: nesting exceeded maxDepth (${MAX_NESTING}) (line 1, column ${MAX_NESTING})`,
    ]);
  });

  it('a mapping of 50,000 distinct keys parses (duplicates are found in one pass)', () => {
    let text = '';
    for (let i = 0; i < 50_000; i++) text += `k${i}: ${i}\n`;
    const r = parseDocuments(`${text}k7: again\n`, 'f.yaml');
    expect(r.problems.map((p) => p.message)).toEqual([
      'YAML does not parse: duplicated mapping key (line 50001, column 1)',
    ]);
  });

  it('an alias is a copy: no two places of a document share one object', () => {
    const r = parseDocuments('a: &m {x: 1}\nb: *m\n', 'f.yaml');
    const doc = r.documents[0]?.value as { a: object; b: object };
    expect(doc).toEqual({ a: { x: 1 }, b: { x: 1 } });
    expect(doc.a).not.toBe(doc.b);
  });

  it('one alias of a large node, repeated, is refused before the copy outgrows the file', () => {
    const big = `[${Array.from({ length: 5000 }, (_, i) => i).join(',')}]`;
    const r = parseDocuments(`a: &b ${big}\nc: [${Array(50).fill('*b').join(',')}]\n`, 'f.yaml');
    expect(r.problems.map((p) => p.message)).toEqual([
      'YAML does not parse: aliases expand the document past the size of its file',
    ]);
  });
});

describe('a running gateway keeps its last good plan through hostile files', () => {
  let served: Awaited<ReturnType<typeof webGateway>>;
  beforeAll(async () => {
    served = await webGateway();
  });
  afterAll(() => served.close());

  for (const [name, text] of HOSTILE)
    it(name, async () => {
      const { gw, good } = served;
      const failures = gw.holder.failures;
      gw.write(text);
      await eventually(() => gw.holder.failures > failures);
      expect(gw.holder.lastError?.problems.some((p) => p.source?.file === gw.file)).toBe(true);
      const r = await send(gw.base, { host: 'web.test' });
      expect(r.status).toBe(200);
      expect(header(r, 'x-switchyard-upstream')).toBe('web/v1');
      gw.write(good());
      await eventually(() => gw.holder.lastError === undefined);
    });
});

describe('gateway -c on a hostile file', () => {
  it('exits 2 naming the file, for each', async () => {
    for (const [name, text] of HOSTILE) {
      const dir = tempFiles({ 'gw.yaml': text });
      const gw = startProcess([
        'gateway',
        '-c',
        join(dir, 'gw.yaml'),
        '--port',
        String(await unusedPort()),
        '--admin-port',
        String(await unusedPort()),
        '--host',
        '127.0.0.1',
        '--workers',
        '1',
      ]);
      expect({ name, code: await gw.exited }).toEqual({ name, code: 2 });
      expect(gw.output()).toContain(join(dir, 'gw.yaml'));
      expect(gw.output()).not.toContain('SY_INTERNAL');
    }
  });
});
