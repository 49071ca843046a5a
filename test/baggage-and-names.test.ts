/** The W3C baggage parsing rules (docs/architecture.md, rule 2), and deterministic DNS-1123 names. */
import { describe, expect, it } from 'vitest';
import { escapeRegex, fullMatcher } from '../core/common/regex.js';
import { matchString } from '../core/compiler/evaluate.js';
import { baggageMemberRegex } from '../core/compiler/matches.js';
import { canaryRunId, previewHost, previewName } from '../core/compiler/names.js';

describe('baggage member match', () => {
  const exact = baggageMemberRegex('switchyard-preview', { exact: 'pr-42' });
  const cases: [string, boolean][] = [
    ['switchyard-preview=pr-42', true],
    ['a=1,switchyard-preview=pr-42', true],
    ['a=1 , switchyard-preview = pr-42 , b=2', true],
    ['switchyard-preview=pr-42;ttl=30;x', true],
    ['a=1;switchyard-preview=pr-42', false],
    ['switchyard-preview=pr-421', false],
    ['switchyard-preview=pr-4', false],
    ['Switchyard-Preview=pr-42', false],
    ['switchyard-preview=PR-42', false],
    ['xswitchyard-preview=pr-42', false],
    ['switchyard-preview=pr%2D42', false],
    ['a=switchyard-preview=pr-42', false],
    ['switchyard-preview=pr-7,switchyard-preview=pr-42', true],
  ];
  it.each(cases)('%s → %s', (header, expected) => {
    expect(matchString(exact, header)).toBe(expected);
  });

  it('prefix matches within one member value only', () => {
    const prefix = baggageMemberRegex('tenant', { prefix: 'acme' });
    expect(matchString(prefix, 'tenant=acme-test')).toBe(true);
    expect(matchString(prefix, 'tenant=acm,x=acme')).toBe(false);
  });
});

describe('regex helpers', () => {
  it('escapes every punctuation character so a literal matches only itself', () => {
    const literal = 'a.b*c+(d)[e]{f}|g^h$i\\j?k-l_m/n~o';
    expect(fullMatcher(escapeRegex(literal))(literal)).toBe(true);
    expect(fullMatcher(escapeRegex('a.b'))('axb')).toBe(false);
  });

  it('matches the whole value, as Envoy does', () => {
    expect(fullMatcher('ab+')('abbb')).toBe(true);
    expect(fullMatcher('ab+')('xabbb')).toBe(false);
  });
});

describe('names', () => {
  it('builds preview names of at most 63 characters that keep the PR and commit', () => {
    expect(previewName('checkout', 42, '7f3a2c1e9b0d')).toBe('checkout-pr-42-7f3a2c1');
    const long = previewName(
      'a-very-long-policy-name-that-goes-on-and-on-and-on-forever',
      123456,
      'abcdef0123',
    );
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?-pr-123456-abcdef0$/);
    expect(long).not.toMatch(/--pr/);
  });

  it('gives no preview host when the first label would exceed 63 characters', () => {
    expect(previewHost('pr-42', 'checkout', 'preview.example.com')).toBe(
      'pr-42--checkout.preview.example.com',
    );
    expect(previewHost('pr-42-7f3a2c1', 'x'.repeat(50), 'p.example.com')).toBeUndefined();
  });

  it('changes the canary run id only with the canary version', () => {
    expect(canaryRunId('shop', 'catalog', 'v2')).toBe(canaryRunId('shop', 'catalog', 'v2'));
    expect(canaryRunId('shop', 'catalog', 'v3')).not.toBe(canaryRunId('shop', 'catalog', 'v2'));
    expect(canaryRunId('shop', 'catalog', 'v2')).toMatch(/^[0-9a-f]{8}$/);
  });
});
