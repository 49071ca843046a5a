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
  it('a weight of 140', async () => {
    const { dir, lines } = await invalid({ 'p.yaml': policy('  canary: {version: v2, weight: 140}') });
    expect(lines).toEqual([
      `${join(dir, 'p.yaml')}:document 1: spec.canary.weight: expected an integer from 0 to 100: must be at most 100 (got 140) [SY_SCHEMA]`,
    ]);
  });

  it('an unknown field names the field and the ones expected', async () => {
    const { dir, lines } = await invalid({ 'p.yaml': policy('  canary: {version: v2, wieght: 10}') });
    expect(lines).toContain(
      `${join(dir, 'p.yaml')}:document 1: spec.canary.wieght: unknown field (expected one of: version, weight, sticky) [SY_SCHEMA]`,
    );
    expect(lines).toContain(
      `${join(dir, 'p.yaml')}:document 1: spec.canary.weight: required field is missing [SY_SCHEMA]`,
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
