/**
 * Files and folders of multi-document YAML (or JSON) into raw documents, each with its source.
 * Folders are walked recursively and every path is sorted, so the result never depends on the
 * order in which paths were given on the command line.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { type Problem, problem, type Source } from '../core/errors.js';

export interface RawDocument {
  source: Source;
  value: unknown;
}

export interface LoadResult {
  documents: RawDocument[];
  problems: Problem[];
}

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
  const documents: RawDocument[] = [];
  const problems: Problem[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const source = { file, document: i + 1 };
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const pos = err.linePos?.[0];
        const at = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
        const first = (err.message.split('\n')[0] as string).replace(/ at line \d+, column \d+:?$/, '');
        problems.push(problem('SY_YAML_PARSE', `YAML does not parse: ${first}${at}`, source));
      }
      return;
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    documents.push({ source, value });
  });
  return { documents, problems };
}

export async function loadPaths(paths: readonly string[]): Promise<LoadResult> {
  const problems: Problem[] = [];
  const files = new Set<string>();
  for (const p of paths) for (const f of await expand(p, problems)) files.add(f);
  const documents: RawDocument[] = [];
  for (const file of [...files].sort()) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      problems.push(
        problem('SY_FILE_READ', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`),
      );
      continue;
    }
    const r = parseDocuments(text, file);
    documents.push(...r.documents);
    problems.push(...r.problems);
  }
  if (files.size === 0 && problems.length === 0) {
    problems.push(problem('SY_NO_INPUT', `no .yaml, .yml or .json file in ${paths.join(', ')}`));
  }
  return { documents, problems };
}
