/**
 * RE2 with Envoy's semantics: a pattern must match the whole value. The gateway, `explain` and the
 * validator all go through here, so they accept and match exactly the same patterns as Envoy.
 * re2js is a pure-JS port of RE2 (the native `re2` addon cannot be built here: docs/development.md).
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

/**
 * The largest RE2 program a pattern may compile to: the limit Istio sets for its proxies
 * (`re2.max_program_size.error_level`); a larger one would be refused by Envoy, and costs the
 * gateway as much per match.
 */
export const MAX_REGEX_PROGRAM_SIZE = 32_768;

/** Why a pattern cannot be used (RE2 syntax, or a program over the limit), or undefined when it can. */
export function regexError(pattern: string): string | undefined {
  try {
    const size = RE2JS.compile(pattern).programSize();
    return size > MAX_REGEX_PROGRAM_SIZE
      ? `its RE2 program has ${size} instructions, more than the ${MAX_REGEX_PROGRAM_SIZE} Envoy accepts in Istio`
      : undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Escapes every ASCII punctuation character; RE2 accepts `\` before any punctuation. */
export function escapeRegex(literal: string): string {
  return literal.replace(/[!-/:-@[-`{-~]/g, (c) => `\\${c}`);
}
