/**
 * The import graph of the product's folders, and what breaks its layering (docs/architecture.md,
 * "The parts"): the core (core/) imports nothing outside itself; kube/ only the core;
 * controllers/, gateway/ and pr-bot/ only the core and kube/, never one another; cli/
 * composes them all. And no folder (at any depth) imports a folder that imports it back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const PARTS = ['core', 'kube', 'controllers', 'gateway', 'pr-bot', 'cli', 'sdk'] as const;
type Part = (typeof PARTS)[number];

/** Which parts each part may import (itself aside). */
export const MAY_IMPORT: Record<Part, readonly Part[]> = {
  core: [],
  kube: ['core'],
  controllers: ['core', 'kube'],
  gateway: ['core', 'kube'],
  'pr-bot': ['core', 'kube'],
  cli: ['core', 'kube', 'controllers', 'gateway', 'pr-bot'],
  // What service authors import into their own services: nothing of Switchyard's.
  sdk: [],
};

function sourceFiles(dir: string): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out = out.concat(sourceFiles(p));
    else if (/\.ts$/.test(e.name) && !/\.(test|d)\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

export interface ImportEdge {
  from: string;
  to: string;
  /** `file imports specifier`, for the message. */
  example: string;
}

/** Every relative import between product files, by the folders of both ends. */
export function folderImports(root: string): ImportEdge[] {
  const edges = new Map<string, ImportEdge>();
  for (const part of PARTS) {
    let files: string[] = [];
    try {
      files = sourceFiles(join(root, part));
    } catch {
      continue;
    }
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const target = resolve(dirname(file), m[1] as string);
        const from = relative(root, dirname(file)).split(sep).join('/');
        const to = relative(root, dirname(target)).split(sep).join('/');
        if (from === to || to.startsWith('..')) continue;
        const key = `${from}->${to}`;
        if (!edges.has(key)) edges.set(key, { from, to, example: `${relative(root, file)} imports ${m[1]}` });
      }
    }
  }
  return [...edges.values()];
}

/** One sentence per import that breaks the layering; none when the graph holds. */
export function layerBreaches(root: string): string[] {
  const edges = folderImports(root);
  const breaches: string[] = [];
  const partOf = (folder: string) => folder.split('/')[0] as Part;
  for (const e of edges) {
    const [a, b] = [partOf(e.from), partOf(e.to)];
    if (a !== b && !MAY_IMPORT[a]?.includes(b)) breaches.push(`${a}/ may not import ${b}/: ${e.example}`);
  }
  const has = new Set(edges.map((e) => `${e.from}->${e.to}`));
  for (const e of edges)
    if (has.has(`${e.to}->${e.from}`) && e.from < e.to)
      breaches.push(`${e.from}/ and ${e.to}/ import each other: ${e.example}`);
  return breaches;
}
