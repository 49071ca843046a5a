/**
 * Invalid input exits 2 with one line per problem naming file, document and field path, and no
 * stack trace (acceptance 4 of the foundation issue).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempFiles } from './support/cli.js';

const policy = (spec: string, name = 'checkout') => `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: ${name}, namespace: shop}
spec:
  service: checkout
  port: 8080
  stable: v1
${spec}`;

async function invalid(files: Record<string, string>) {
  const dir = tempFiles(files);
  const r = await cli('validate', '-f', dir);
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  const lines = r.stderr.trim().split('\n');
  return { dir, lines: lines.slice(0, -1), summary: lines.at(-1) };
}

describe('validate: invalid input', () => {
  it('a progressive canary: each mistake named at its field', async () => {
    const cases: [string, string][] = [
      [
        '  canary: {version: v2, steps: [{weight: 10}], stepWeight: 10, interval: 1m}',
        'spec.canary: give steps, or stepWeight with interval (and maxWeight), not both [SY_ONE_OF]',
      ],
      [
        '  canary: {version: v2, stepWeight: 10}',
        'spec.canary.interval: stepWeight needs interval: how long each step holds its weight [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, stepWeight: 30, maxWeight: 20, interval: 1m}',
        'spec.canary.maxWeight: expected at least stepWeight (30) [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, weight: 5, analysis: {interval: 1m, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}}',
        'spec.canary.analysis: an analysis judges the steps of a run: add steps (or stepWeight) [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 1m}], weight: 5}',
        'spec.canary.weight: a progressive run sets the weight itself: remove weight (or remove the steps to set it by hand) [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 1m}], analysis: {interval: 30s, metrics: [{name: error-budget, thresholdRange: {max: 1}}]}}',
        'spec.canary.analysis.metrics[0].query: error-budget is not a built-in metric (request-success-rate, request-duration): give its query [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 1m}], analysis: {interval: 30s, metrics: [{name: request-duration, thresholdRange: {}}]}}',
        'spec.canary.analysis.metrics[0].thresholdRange: expected min, max or both [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 1m}], analysis: {interval: 500ms, metrics: [{name: request-duration, thresholdRange: {max: 500}}]}}',
        'spec.canary.analysis.interval: expected at least 1s (got 500ms): Prometheus needs samples in it [SY_INVALID_VALUE]',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 2d}]}',
        'spec.canary.steps[0].pause: expected a duration such as 500ms, 5s, 1m or 24h',
      ],
      [
        '  canary: {version: v2, steps: [{weight: 10, pause: 25h}]}',
        'spec.canary.steps[0].pause: expected at most 24h (a step is held at most a day) (got 25h) [SY_INVALID_VALUE]',
      ],
    ];
    for (const [spec, line] of cases) {
      const { dir, lines } = await invalid({ 'p.yaml': policy(spec) });
      expect(lines.map((l) => l.replace(`${join(dir, 'p.yaml')}:document 1: `, ''))).toContainEqual(
        expect.stringContaining(line),
      );
    }
    const ok = await cli(
      'validate',
      '-f',
      join(
        tempFiles({
          'p.yaml': policy(
            '  canary: {version: v2, stepWeight: 20, maxWeight: 60, interval: 1m, autoPromote: true, analysis: {interval: 30s, failureLimit: 2, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}, {name: request-duration, thresholdRange: {max: 500}}, {name: saturation, query: "max(cpu{ns=\\"{{namespace}}\\"})", thresholdRange: {max: 0.8}}]}}',
          ),
        }),
        'p.yaml',
      ),
    );
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });

  it('a weight of 140', async () => {
    const { dir, lines } = await invalid({ 'p.yaml': policy('  canary: {version: v2, weight: 140}') });
    expect(lines).toEqual([
      `${join(dir, 'p.yaml')}:document 1: spec.canary.weight: expected an integer from 0 to 100: must be at most 100 (got 140) [SY_SCHEMA]`,
    ]);
  });

  it('an unknown field names the field and the ones expected', async () => {
    const { dir, lines } = await invalid({ 'p.yaml': policy('  canary: {version: v2, wieght: 10}') });
    expect(lines).toContain(
      `${join(dir, 'p.yaml')}:document 1: spec.canary.wieght: unknown field (expected one of: version, weight, sticky, steps, stepWeight, maxWeight, interval, analysis, autoPromote) [SY_SCHEMA]`,
    );
    const missing = await invalid({ 'p.yaml': policy('  canary: {version: v2}') });
    expect(missing.lines).toContain(
      `${join(missing.dir, 'p.yaml')}:document 1: spec.canary.weight: required field is missing (a weight from 0 to 100, or steps for a progressive run) [SY_SCHEMA]`,
    );
  });

  it('a regex RE2 rejects (lookahead)', async () => {
    const { dir, lines } = await invalid({
      'p.yaml': policy(`  intercepts:
    - name: look
      match: {header: x-user, regex: '(?=admin).*'}
      to: {version: v2}`),
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${join(dir, 'p.yaml')}:document 1: spec\\.intercepts\\[0\\]\\.match\\.regex: expected an RE2 regular expression: .*\\(\\?=.* \\[SY_INVALID_REGEX\\]$`,
      ),
    );
  });

  it('a baggage key with a space', async () => {
    const { dir, lines } = await invalid({
      'p.yaml': policy(`  intercepts:
    - name: tenant
      match: {baggage: 'my tenant', exact: acme}
      to: {version: v2}`),
    });
    expect(lines).toEqual([
      `${join(dir, 'p.yaml')}:document 1: spec.intercepts[0].match.baggage: expected a W3C baggage key: letters, digits and !#$%&'*+-.^_\`|~, no spaces (got "my tenant") [SY_SCHEMA]`,
    ]);
  });

  it("a header the token verifier writes (x-switchyard-claim-*) is no one's to match", async () => {
    const { dir, lines } = await invalid({
      'p.yaml': policy(`  intercepts:
    - name: forged
      match: {header: x-switchyard-claim-aud, exact: shop/checkout}
      to: {version: v2}
  previews: {repository: acme/checkout, header: x-switchyard-claim-intercept-value}`),
    });
    expect(lines).toEqual([
      `${join(dir, 'p.yaml')}:document 1: spec.intercepts[0].match.header: x-switchyard-claim-aud: headers named x-switchyard-claim-* are written by the token verifier from a verified token's claims; match another header (with requireToken, the token stands for it) [SY_INVALID_VALUE]`,
      `${join(dir, 'p.yaml')}:document 1: spec.previews.header: x-switchyard-claim-intercept-value: headers named x-switchyard-claim-* are written by the token verifier from a verified token's claims; match another header (with requireToken, the token stands for it) [SY_INVALID_VALUE]`,
    ]);
  });

  it('a policy referencing a missing preview', async () => {
    const { dir, lines } = await invalid({
      'p.yaml': policy(`  intercepts:
    - name: demo
      match: {header: x-demo, exact: '1'}
      to: {preview: pr-99}`),
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${join(dir, 'p.yaml')}:document 1: spec\\.intercepts\\[0\\]\\.to\\.preview: no Ready Preview pr-99 of policy checkout .*\\[SY_MISSING_PREVIEW\\]$`,
      ),
    );
  });

  it('YAML that does not parse, in the second document of a file', async () => {
    const { dir, lines } = await invalid({ 'p.yaml': `${policy('')}---\nkind: [unclosed\n` });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${join(dir, 'p.yaml')}:document 2: YAML does not parse: .*\\(line \\d+, column \\d+\\) \\[SY_YAML_PARSE\\]$`,
      ),
    );
  });

  it('reports every problem of every file, one line each, in file order', async () => {
    const { lines, summary } = await invalid({
      'a.yaml': policy('  canary: {version: v1, weight: 10}'),
      'b.yaml': policy('  timeout: 5 minutes', 'other'),
      'c.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n',
    });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /a\.yaml:document 1: spec\.canary\.version: canary version must differ from stable \(v1\) \[SY_INVALID_VALUE\]$/,
    );
    expect(lines[1]).toMatch(
      /b\.yaml:document 1: spec\.timeout: expected a duration such as 500ms, 5s, 1m or 24h \(got "5 minutes"\) \[SY_SCHEMA\]$/,
    );
    expect(lines[2]).toMatch(
      /c\.yaml:document 1: expected apiVersion switchyard\.dev\/v1alpha1 and kind TrafficPolicy, Preview or GatewayConfig \(got apps\/v1 Deployment\) \[SY_UNKNOWN_KIND\]$/,
    );
    expect(summary).toBe('3 problems found; nothing was written');
  });

  it('exactly one of header or baggage, and of exact, prefix or regex', async () => {
    const { lines } = await invalid({
      'p.yaml': policy(`  intercepts:
    - name: both
      match: {header: x-a, baggage: b, exact: '1', prefix: '2'}
      to: {version: v2}`),
    });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /spec\.intercepts\[0\]\.match: expected exactly one of header, baggage \(got header and baggage\) \[SY_ONE_OF\]$/,
    );
    expect(lines[1]).toMatch(
      /spec\.intercepts\[0\]\.match: expected exactly one of exact, prefix, regex \(got exact and prefix\) \[SY_ONE_OF\]$/,
    );
  });

  it('a missing path', async () => {
    const r = await cli('validate', '-f', '/nonexistent/switchyard.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cannot read \/nonexistent\/switchyard\.yaml: ENOENT \[SY_FILE_READ\]/);
  });

  it('render writes nothing to stdout when input is invalid', async () => {
    const dir = tempFiles({ 'p.yaml': policy('  canary: {version: v2, weight: 140}') });
    const r = await cli('render', '-f', dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it("durations and sizes have maxima: a timeout of 600h (which overflowed Node's timer) and the others", async () => {
    const { dir, lines } = await invalid({
      'p.yaml': policy(`  timeout: 600h
  retries: {attempts: 2, perTryTimeout: 2h}
  canary: {version: v2, weight: 10, sticky: {maxAge: 9999h}}
  mirror: {to: {version: v2}, maxBodyBytes: 1073741824}
  rateLimits: [{name: day, key: {route: {}}, limit: 1, window: 48h}]
  previews: {repository: acme/shop, ttl: 10000h}`),
      'q.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: checkout-pr-1-abcdef1, namespace: shop}
spec: {policy: checkout, repository: acme/shop, pullRequest: 1, commit: abcdef1, ttl: 99999h}
`,
    });
    const p = join(dir, 'p.yaml');
    expect(lines).toEqual([
      `${p}:document 1: spec.mirror.maxBodyBytes: expected a byte count, at most 10 MiB: must be at most 10485760 (got 1073741824) [SY_SCHEMA]`,
      `${join(dir, 'q.yaml')}:document 1: spec.ttl: expected at most 2160h (a preview is not a release) (got 99999h) [SY_INVALID_VALUE]`,
    ]);
    const { lines: more } = await invalid({
      'p.yaml': policy(`  timeout: 600h
  retries: {attempts: 2, perTryTimeout: 2h}
  canary: {version: v2, weight: 10, sticky: {maxAge: 9999h}}
  rateLimits: [{name: day, key: {route: {}}, limit: 1, window: 48h}]
  previews: {repository: acme/shop, ttl: 10000h}`),
    });
    expect(more.map((l) => l.replace(/^.*document 1: /, ''))).toEqual([
      'spec.timeout: expected at most 1h (longer requests belong on a streaming path) (got 600h) [SY_INVALID_VALUE]',
      'spec.retries.perTryTimeout: expected at most 1h (a try cannot outlast the request) (got 2h) [SY_INVALID_VALUE]',
      'spec.canary.sticky.maxAge: expected at most 9600h (browsers keep a cookie at most 400 days) (got 9999h) [SY_INVALID_VALUE]',
      'spec.previews.ttl: expected at most 2160h (a preview is not a release) (got 10000h) [SY_INVALID_VALUE]',
      'spec.rateLimits[0].window: expected at most 24h (counts live one window) (got 48h) [SY_INVALID_VALUE]',
    ]);
  });

  it("a Preview of another repository than its policy's is refused, not routed", async () => {
    const { lines } = await invalid({
      'p.yaml': `${policy('  previews: {repository: acme/shop}')}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: checkout-pr-1-abcdef1, namespace: shop}
spec: {policy: checkout, repository: evil/fork, pullRequest: 1, commit: abcdef1}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: checkout-pr-2-abcdef2, namespace: shop}
spec: {policy: checkout, repository: ACME/Shop, pullRequest: 2, commit: abcdef2}
`,
    });
    expect(lines.map((l) => l.replace(/^.*p\.yaml:/, ''))).toEqual([
      'document 2: spec.repository: Preview shop/checkout-pr-1-abcdef1 is of repository evil/fork, but TrafficPolicy shop/checkout takes previews of acme/shop only (spec.previews.repository) [SY_REPOSITORY_MISMATCH]',
    ]);
  });

  it('number and duration flags are checked: a bad value exits 2 naming the flag', async () => {
    for (const [args, flag] of [
      [['gateway', '-c', '.', '--port', '99999'], "'-p, --port <port>' argument '99999'"],
      [['gateway', '-c', '.', '--admin-port', 'x'], "'--admin-port <port>' argument 'x'"],
      [['gateway', '-c', '.', '--redis-timeout', '0s'], "'--redis-timeout <duration>' argument '0s'"],
      [['demo', '--port', '-1'], "'-p, --port <port>' argument '-1'"],
      [['controller', '--workers', '0'], "'--workers <n>' argument '0'"],
      [
        ['gateway', '-c', '.', '--trust-proxy', '10.0.0.0/99'],
        "'--trust-proxy <value>' argument '10.0.0.0/99'",
      ],
      [['controller', '--workers', '2.5'], "'--workers <n>' argument '2.5'"],
      [['controller', '--lease-duration', 'forever'], "'--lease-duration <duration>' argument 'forever'"],
    ] as const) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`option ${flag} is invalid`);
    }
  });

  it('an unknown flag is invalid input (2), not a crash', async () => {
    const r = await cli('render', '--no-such-flag');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option/);
  });

  it('the installed binary exits 2 for invalid input and 0 for valid input', () => {
    const bin = join(import.meta.dirname, '..', 'bin', 'switchyard.js');
    const dir = tempFiles({ 'p.yaml': policy('  canary: {version: v2, weight: 140}') });
    const bad = spawnSync(process.execPath, [bin, 'validate', '-f', dir], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/spec\.canary\.weight/);
    const ok = execFileSync(
      process.execPath,
      [bin, 'validate', '-f', join(import.meta.dirname, '..', 'deploy', 'examples')],
      { encoding: 'utf8' },
    );
    expect(ok).toBe('valid: 7 TrafficPolicies, 4 Previews\n');
  });
});
