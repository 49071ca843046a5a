/** Builders for the RequestMatch values the compiler emits (header, baggage member, cookie, method). */
import { escapeRegex } from '../common/regex.js';
import type { StringMatch } from './plan.js';

export type ValueMatch = { exact: string } | { prefix: string } | { regex: string };

/** The RE2 fragment that matches a member value as the user's StringMatch says. */
function valueFragment(m: ValueMatch): string {
  if ('exact' in m) return escapeRegex(m.exact);
  if ('prefix' in m) return `${escapeRegex(m.prefix)}[^,;]*`;
  return `(?:${m.regex})`;
}

/**
 * A W3C `baggage` member match as one full-match RE2 regex over the whole header, so Envoy (which
 * cannot parse baggage) and the gateway evaluate the same thing. Members are split by `,`, blanks
 * around `,` `=` `;` are allowed, properties after `;` are ignored, no percent-decoding.
 */
export function baggageMemberRegex(key: string, value: ValueMatch): StringMatch {
  const ws = '[ \\t]*';
  return {
    regex: `(?:.*,)?${ws}${escapeRegex(key)}${ws}=${ws}${valueFragment(value)}${ws}(?:;[^,]*)?(?:,.*)?`,
  };
}

/** The `cookie` header holds a cookie `name` whose value is `<run>.<cls><w>` for one of `weights`. */
export function cookieClassRegex(
  name: string,
  run: string,
  cls: 'c' | 's',
  weights: readonly number[],
): StringMatch {
  const ws = '[ \\t]*';
  return {
    regex: `(?:.*;)?${ws}${escapeRegex(name)}=${escapeRegex(run)}\\.${cls}(?:${weights.join('|')})${ws}(?:;.*)?`,
  };
}

export function methodMatch(methods: readonly string[]): StringMatch {
  return methods.length === 1 ? { exact: methods[0] as string } : { regex: methods.join('|') };
}

/** Host header with an optional port: `pr-42--checkout.preview.example.com(:443)?`. */
export function authorityMatch(host: string): StringMatch {
  return { regex: `${escapeRegex(host)}(?::[0-9]+)?` };
}
