/**
 * Configuration a careless or hostile author writes (issue 27): YAML that breaks the parser's own
 * rules, aliases with no anchor, billion-laughs aliases, a key that names an Object method, an
 * upstream URL that matches the schema's pattern but does not parse. `validate` exits 2 naming
 * the file; a running gateway keeps serving its last good plan through every one of them, and a
 * gateway started on one exits 2, not 1.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PARSE_ERRORS, parseDocuments } from '../src/resources/load.js';
import { cli, tempFiles } from './support/cli.js';
import { eventually, gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { agent, header, send } from './support/http.js';
import { startProcess } from './support/process.js';
import { startUpstream, type TestUpstream, unusedPort } from './support/upstreams.js';

const POLICY = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, hosts: [web.test], stable: v1}
`;

/** Each hostile file, and what its problem line must say. */
const HOSTILE: [name: string, text: string, says: RegExp][] = [
  ['an alias with no anchor', `${POLICY}---\nkind: *typo\n`, /YAML does not parse: .*typo/],
  [
    'an anchor that refers to itself',
    `${POLICY}---\na: &x [1, *x]\n`,
    /alias \*x is inside the node it names/,
  ],
  [
    'too many aliases (billion laughs)',
    `${POLICY}---\na: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
    /YAML does not parse: .*alias/i,
  ],
  [
    'an upstream URL that does not parse',
    `${POLICY}${gatewayConfig({ 'web/v1': '"http://[::1"' })}`,
    /spec\.upstreams\["web\/v1"\]: expected an http:\/\/ or https:\/\/ URL .*does not parse/,
  ],
  [
    'an upstream key that is not <service>/<version>, with no URL (found by the property test)',
    `${POLICY}${gatewayConfig({ 'Web/V1': 'null' })}`,
    /spec\.upstreams\["Web\/V1"\]: unknown key \(expected a key matching/,
  ],
  [
    'a kind that names an Object method',
    `${POLICY}---\napiVersion: switchyard.dev/v1alpha1\nkind: constructor\nspec: {}\n`,
    /expected apiVersion .* and kind TrafficPolicy, Preview or GatewayConfig .*\[SY_UNKNOWN_KIND\]/,
  ],
  ['a key repeated in a mapping', `${POLICY}---\na: 1\nb: 2\na: 3\n`, /Map keys must be unique/],
  [
    'a 2 MB intercept regex (a file over 4 MiB is refused before it is read)',
    `${POLICY.replace('stable: v1}', `stable: v1, intercepts: [{name: a, match: {header: x-a, regex: "${'a'.repeat(2_000_000)}"}, to: {version: v2}}]}`)}`,
    /spec\.intercepts\[0\]\.match\.regex: expected an RE2 regular expression of at most 4096 characters \(got 2000000\)/,
  ],
  [
    "a regex whose RE2 program is over Istio's 32,768",
    `${POLICY.replace('stable: v1}', `stable: v1, intercepts: [{name: a, match: {header: x-a, regex: "${'[a-z]{1000}'.repeat(33)}"}, to: {version: v2}}]}`)}`,
    /regex: expected an RE2 regular expression: its RE2 program has \d+ instructions, more than the 32768/,
  ],
  [
    "a rate limit above Envoy's 32-bit token bucket",
    `${POLICY.replace('stable: v1}', 'stable: v1, rateLimits: [{name: a, key: {clientIp: {}}, limit: 4294967296, window: 1s}]}')}`,
    /spec\.rateLimits\[0\]\.limit: expected a positive integer below 2\^32: must be at most 4294967295/,
  ],
  ['nesting deeper than the stack', `${POLICY}---\n${'['.repeat(20_000)}\n`, /YAML does not parse/],
];

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

describe('the parser stops at a bounded number of errors', () => {
  it('a file broken on every line is reported in at most MAX_PARSE_ERRORS + 1 lines', () => {
    for (const line of ['a: [b, c\n', '\tx: 1\n', 'k: 1\n', '- a\nb: c\n', 'a: "x\n']) {
      const r = parseDocuments(line.repeat(20_000), 'f.yaml');
      expect(r.problems.length).toBeGreaterThan(0);
      expect(r.problems.length).toBeLessThanOrEqual(MAX_PARSE_ERRORS + 1);
      expect(r.problems.every((p) => p.source?.file === 'f.yaml' && p.code === 'SY_YAML_PARSE')).toBe(true);
    }
  });

  it('a mapping of 50,000 distinct keys parses (duplicates are found in one pass)', () => {
    let text = '';
    for (let i = 0; i < 50_000; i++) text += `k${i}: ${i}\n`;
    const r = parseDocuments(`${text}k7: again\n`, 'f.yaml');
    expect(r.problems.map((p) => p.message)).toEqual([
      'YAML does not parse: Map keys must be unique (line 50001, column 1)',
    ]);
  });
});

describe('a running gateway keeps its last good plan through hostile files', () => {
  let web: TestUpstream;
  let gw: TestGateway;
  const good = () => `${POLICY}${gatewayConfig({ 'web/v1': web.url })}`;

  beforeAll(async () => {
    web = await startUpstream('web/v1');
    gw = await startTestGateway(good());
  });
  afterAll(async () => {
    await gw.close();
    await web.close();
    await agent.close();
  });

  for (const [name, text] of HOSTILE)
    it(name, async () => {
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
