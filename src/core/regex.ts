/**
 * RE2 with Envoy's semantics: a pattern must match the whole value. The gateway, `explain` and the
 * validator all go through here, so they accept and match exactly the same patterns as Envoy.
 * re2js is a pure-JS port of RE2 (the native `re2` addon cannot be built here: see README).
 */
import { RE2JS } from 're2js';

export type FullMatcher = (value: string) => boolean;

const cache = new Map<string, FullMatcher>();

/** Compiles once per distinct pattern; throws RE2's own syntax error for an invalid pattern. */
export function fullMatcher(pattern: string): FullMatcher {
  let m = cache.get(pattern);
  if (!m) {
    const compiled = RE2JS.compile(pattern);
    m = (value: string) => compiled.matches(value);
    cache.set(pattern, m);
  }
  return m;
}

/** The RE2 syntax error for a pattern, or undefined when it compiles. */
export function re2SyntaxError(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Escapes every ASCII punctuation character; RE2 accepts `\` before any punctuation. */
export function escapeRegex(literal: string): string {
  return literal.replace(/[!-/:-@[-`{-~]/g, (c) => `\\${c}`);
}
