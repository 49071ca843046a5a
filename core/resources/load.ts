/**
 * Files and folders of multi-document YAML (or JSON) into raw documents, each with its source.
 * Folders are walked recursively and every path is sorted, so the result never depends on the
 * order in which paths were given on the command line.
 *
 * Hostile files are expected (a typo in a watched file, a pull request's YAML): every failure is a
 * problem naming the file and line, never an exception, and the work is linear in the file's size.
 * js-yaml parses (YAML 1.2 core schema, as before with the `yaml` library): it stops at a file's
 * first error, refuses repeated keys and nesting deeper than MAX_NESTING itself, and is 7-12 times
 * faster than the `yaml` library on these files (load-tests/README.md, bench:config), which
 * parses a document's whole syntax tree before it reports any error. Aliases are bounded here.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CORE_SCHEMA, type LoadOptions, loadAll, YAMLException } from 'js-yaml';
import { type Problem, problem, type Source } from '../common/errors.js';

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
/** Open collections at one point of a file. Kubernetes objects nest about 25 deep. */
export const MAX_NESTING = 100;
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

/** Parses YAML text that holds one or more documents. Empty documents (a trailing `---`) are skipped. */
export function parseDocuments(text: string, file: string): LoadResult {
  let values: unknown[];
  // js-yaml hands documents over only once the whole file parsed; its node listener says how
  // many it had finished, which names the document an error is in.
  let finished = 0;
  const options: LoadOptions & { maxDepth: number } = {
    schema: CORE_SCHEMA,
    maxDepth: MAX_NESTING, // js-yaml 4.3's (its types, 4.0.9, predate it)
    listener(_event, state) {
      finished = (state as unknown as { documents: unknown[] }).documents.length;
    },
  };
  try {
    values = loadAll(text, undefined, options);
  } catch (e) {
    // The documents before the broken one are not used: a file is applied whole or not at all.
    return { documents: [], problems: [parseProblem(e, { file, document: finished + 1 })] };
  }
  const documents: RawDocument[] = [];
  const problems: Problem[] = [];
  values.forEach((value, i) => {
    const source = { file, document: i + 1 };
    if (value === null || value === undefined) return;
    const unshared = unshareAliases(value, text.length);
    if (typeof unshared === 'string')
      problems.push(problem('SY_YAML_PARSE', `YAML does not parse: ${unshared}`, source));
    else documents.push({ source, value: unshared.value });
  });
  return { documents, problems };
}

function parseProblem(e: unknown, source: Source): Problem {
  if (e instanceof YAMLException) {
    const at = e.mark ? ` (line ${e.mark.line + 1}, column ${e.mark.column + 1})` : '';
    return problem('SY_YAML_PARSE', `YAML does not parse: ${e.reason}${at}`, source);
  }
  // js-yaml recurses per nesting level; MAX_NESTING keeps it far from the stack's end, but a
  // parse must never throw past this boundary.
  const why = e instanceof RangeError ? 'nested too deeply' : String(e);
  return problem('SY_YAML_PARSE', `YAML does not parse: ${why}`, source);
}

/**
 * The document with every alias copied out, so no two places share one object (the resources are
 * plain JSON data from here on), or why it cannot be: js-yaml gives an alias the anchored object
 * itself, so a "billion laughs" file is small until it is walked. The walk stops past
 * MAX_ALIAS_COUNT alias uses, or when the copy would hold more nodes than the file has bytes (a
 * node costs at least one byte unless an alias repeats it).
 */
function unshareAliases(root: unknown, maxNodes: number): { value: unknown } | string {
  const seen = new Set<object>();
  const ancestors = new Set<object>();
  let aliases = 0;
  let nodes = 0;
  const copy = (value: unknown): unknown => {
    if (++nodes > maxNodes) throw new AliasBound('aliases expand the document past the size of its file');
    if (value === null || typeof value !== 'object') return value;
    if (ancestors.has(value)) throw new AliasBound('an alias is inside the node it names (a cycle)');
    if (seen.has(value) && ++aliases > MAX_ALIAS_COUNT)
      throw new AliasBound(`more than ${MAX_ALIAS_COUNT} aliases in one document`);
    seen.add(value);
    ancestors.add(value);
    const out = Array.isArray(value) ? value.map(copy) : copyMapping(value as Record<string, unknown>, copy);
    ancestors.delete(value);
    return out;
  };
  try {
    return { value: copy(root) };
  } catch (e) {
    if (e instanceof AliasBound) return e.message;
    throw e;
  }
}

function copyMapping(value: Record<string, unknown>, copy: (v: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // A `__proto__` key is an own property in js-yaml's result; it stays one here.
  for (const [k, v] of Object.entries(value))
    Object.defineProperty(out, k, { value: copy(v), enumerable: true, writable: true, configurable: true });
  return out;
}

class AliasBound extends Error {}

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
