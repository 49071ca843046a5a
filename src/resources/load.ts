/**
 * Files and folders of multi-document YAML (or JSON) into raw documents, each with its source.
 * Folders are walked recursively and every path is sorted, so the result never depends on the
 * order in which paths were given on the command line.
 *
 * Hostile files are expected (a typo in a watched file, a pull request's YAML): every failure is a
 * problem naming the file, never an exception, and the work is linear in the file's size. So the
 * parse stops at MAX_PARSE_ERRORS (the `yaml` library would otherwise build an error object per
 * broken line, seconds for a megabyte), duplicate keys are found by one pass with a Set (the
 * library's own check compares each key with every earlier one: quadratic), and files are at most
 * MAX_FILE_BYTES.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Composer, type CST, type Document, isScalar, LineCounter, Parser, visit } from 'yaml';

type Token = CST.Token;

import { type Problem, problem, type Source } from '../core/errors.js';

export interface RawDocument {
  source: Source;
  value: unknown;
}

export interface LoadResult {
  documents: RawDocument[];
  problems: Problem[];
}

/** Four times a ConfigMap's limit: no configuration of Switchyard's is near it. */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
/** Errors reported per file before the parse stops. */
export const MAX_PARSE_ERRORS = 20;
/** Aliases expanded per document (the "billion laughs" bound). */
export const MAX_ALIAS_COUNT = 100;

const YAML_FILE = /\.(ya?ml|json)$/i;

async function expand(path: string, problems: Problem[]): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (e) {
    problems.push(problem('SY_FILE_READ', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`));
    return [];
  }
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && YAML_FILE.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .filter(
      (p) =>
        !relative(path, p)
          .split(/[\\/]/)
          .some((part) => part.startsWith('.')),
    );
}

interface ComposerInternals {
  onError: (source: unknown, code: string, message: string, warning?: boolean) => void;
  errors: { message: string; pos: [number, number] }[];
}

/** Thrown from the composer's error callback to stop a parse that has said enough. */
const ENOUGH = Symbol('enough parse errors');

interface ParseError {
  message: string;
  offset: number;
}

/** Parses YAML text that holds one or more documents. Empty documents (a trailing `---`) are skipped. */
export function parseDocuments(text: string, file: string): LoadResult {
  const lines = new LineCounter();
  const errors: ParseError[] = [];
  const composed = composeAll(text, lines, errors);
  const at = (offset: number) => {
    const pos = lines.linePos(offset);
    return ` (line ${pos.line}, column ${pos.col})`;
  };
  const documents: RawDocument[] = [];
  const problems: Problem[] = [];
  composed.forEach((doc, i) => {
    const source = { file, document: i + 1 };
    const docErrors: ParseError[] = [
      ...doc.errors.map((e) => ({ message: e.message, offset: e.pos[0] })),
      ...structureErrors(doc),
    ];
    if (docErrors.length > 0) {
      for (const e of docErrors.slice(0, MAX_PARSE_ERRORS))
        problems.push(problem('SY_YAML_PARSE', `YAML does not parse: ${e.message}${at(e.offset)}`, source));
      return;
    }
    const value = toValue(doc);
    if (typeof value === 'string') {
      problems.push(problem('SY_YAML_PARSE', `YAML does not parse: ${value}`, source));
      return;
    }
    if (value.value === null || value.value === undefined) return;
    documents.push({ source, value: value.value });
  });
  // Errors the parse stopped at belong to the document it had not finished.
  const source = { file, document: composed.length + 1 };
  for (const e of errors.slice(0, MAX_PARSE_ERRORS))
    problems.push(problem('SY_YAML_PARSE', `YAML does not parse: ${e.message}${at(e.offset)}`, source));
  if (errors.length > MAX_PARSE_ERRORS)
    problems.push(
      problem('SY_YAML_PARSE', `more than ${MAX_PARSE_ERRORS} errors: stopped reading the file`, source),
    );
  return { documents, problems };
}

/**
 * The documents the composer finished, in order. A parse that fails past MAX_PARSE_ERRORS, or
 * throws (too deep for the stack), stops; its errors go to `errors`.
 */
function composeAll(text: string, lines: LineCounter, errors: ParseError[]): Document.Parsed[] {
  const composer = new Composer({ uniqueKeys: false, prettyErrors: false });
  // The composer's error callback and list are private in the library's types but are plain
  // fields (yaml 2.x); the parse-time test in test/hostile-config.test.ts fails if that changes.
  const inner = composer as unknown as ComposerInternals;
  const record = inner.onError;
  inner.onError = (source, code, message, warning) => {
    if (!warning && inner.errors.length >= MAX_PARSE_ERRORS) {
      for (const e of inner.errors) errors.push({ message: firstLine(e.message), offset: e.pos[0] });
      errors.push({ message: firstLine(message), offset: offsetOf(source) });
      throw ENOUGH;
    }
    record(source, code, message, warning);
  };
  const out: Document.Parsed[] = [];
  try {
    const tokens = withoutStrayErrors(new Parser(lines.addNewLine).parse(text), errors);
    for (const doc of composer.compose(tokens, true, text.length)) out.push(doc as Document.Parsed);
  } catch (e) {
    if (e !== ENOUGH)
      errors.push({
        message: e instanceof RangeError ? 'nested too deeply' : firstLine(String(e)),
        offset: 0,
      });
  }
  return out;
}

/**
 * The parser's tokens, less the error tokens between documents (the composer makes an error object
 * of each without its callback, one per line of a broken file): those are recorded here instead,
 * and the parse stops at MAX_PARSE_ERRORS of them.
 */
function* withoutStrayErrors(tokens: Generator<Token>, errors: ParseError[]): Generator<Token> {
  for (const token of tokens) {
    if (token.type !== 'error') {
      yield token;
      continue;
    }
    errors.push({ message: token.message, offset: token.offset });
    if (errors.length > MAX_PARSE_ERRORS) throw ENOUGH;
  }
}

function offsetOf(source: unknown): number {
  if (typeof source === 'number') return source;
  const s = source as { offset?: number; range?: [number] } | undefined;
  return s?.offset ?? s?.range?.[0] ?? 0;
}

function firstLine(message: string): string {
  return (message.split('\n')[0] as string).replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * What YAML allows but a resource cannot be, found in one pass: keys repeated in one mapping
 * (YAML 1.2 forbids them; one Set per mapping) and an alias inside the node it names (a cycle,
 * which no JSON value can hold).
 */
function structureErrors(doc: Document.Parsed): ParseError[] {
  const out: ParseError[] = [];
  const add = (message: string, offset: number) => {
    out.push({ message, offset });
    return out.length >= MAX_PARSE_ERRORS ? visit.BREAK : undefined;
  };
  visit(doc, {
    Alias(_, alias, path) {
      const target = alias.resolve(doc);
      if (target && path.includes(target))
        return add(`alias *${alias.source} is inside the node it names (a cycle)`, alias.range?.[0] ?? 0);
      return undefined;
    },
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        // A collection as a key is refused by the schema later.
        if (!isScalar(pair.key)) continue;
        if (seen.has(pair.key.value)) {
          if (add('Map keys must be unique', pair.key.range?.[0] ?? 0)) return visit.BREAK;
        }
        seen.add(pair.key.value);
      }
      return undefined;
    },
  });
  return out;
}

/** The document as plain data, or why it cannot be (an alias with no anchor, too many aliases). */
function toValue(doc: Document.Parsed): { value: unknown } | string {
  try {
    return { value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (e) {
    if (e instanceof RangeError) return 'nested too deeply';
    return firstLine(e instanceof Error ? e.message : String(e));
  }
}

export async function loadPaths(paths: readonly string[]): Promise<LoadResult> {
  const problems: Problem[] = [];
  const files = new Set<string>();
  for (const p of paths) for (const f of await expand(p, problems)) files.add(f);
  const documents: RawDocument[] = [];
  for (const file of [...files].sort()) {
    const text = await readText(file, problems);
    if (text === undefined) continue;
    const r = parseDocuments(text, file);
    documents.push(...r.documents);
    problems.push(...r.problems);
  }
  if (files.size === 0 && problems.length === 0) {
    problems.push(problem('SY_NO_INPUT', `no .yaml, .yml or .json file in ${paths.join(', ')}`));
  }
  return { documents, problems };
}

/** A file's text, or undefined with a problem: unreadable, or larger than MAX_FILE_BYTES. */
async function readText(file: string, problems: Problem[]): Promise<string | undefined> {
  try {
    const size = (await stat(file)).size;
    if (size > MAX_FILE_BYTES) {
      problems.push(
        problem(
          'SY_FILE_READ',
          `cannot read ${file}: ${size} bytes, more than the ${MAX_FILE_BYTES} allowed`,
        ),
      );
      return undefined;
    }
    return await readFile(file, 'utf8');
  } catch (e) {
    problems.push(problem('SY_FILE_READ', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`));
    return undefined;
  }
}
