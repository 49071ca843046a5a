/**
 * The gateway's file source: the same YAML the renderer reads (TrafficPolicies, Previews) plus a
 * GatewayConfig document mapping upstream keys to URLs. Watches the files' folders, because
 * editors and ConfigMap mounts replace files by rename rather than writing in place.
 */
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { problem } from '../core/common/errors.js';
import { type LoadResult, loadPaths } from '../core/resources/load.js';
import { readResources } from '../core/resources/validate.js';
import { type BuildResult, buildSnapshot, upstreamsOf } from './snapshot.js';

/** How long reading and parsing the files may take before the load is refused. */
export const LOAD_TIMEOUT_MS = 10_000;
/** The reading thread's heap: a 4 MiB file parses in a fraction of it; a hostile one is stopped at it. */
const LOAD_HEAP_MB = 128;

/**
 * The files as a plan, or the problems that refuse them. Never rejects: whatever the files hold,
 * the caller gets a result (and a running gateway keeps its last good plan). `offThread`: read and
 * parse on a worker thread, for a reload while traffic flows; at start, with no traffic yet, the
 * process reads them itself (a thread costs memory, and every `--workers` process starts at once).
 */
export async function loadGatewayFiles(
  paths: readonly string[],
  generation: number,
  now: Date,
  offThread = false,
): Promise<BuildResult> {
  try {
    const loaded = offThread ? await loadOffThread(paths) : await loadPaths(paths);
    // A reload that finds no document at all most likely read a file being rewritten (truncated,
    // not yet written): refused, so the routes do not vanish until the next write.
    if (offThread && loaded.documents.length === 0 && loaded.problems.length === 0)
      return {
        ok: false,
        problems: [problem('SY_NO_INPUT', `${paths.join(', ')} hold no document (a file being written?)`)],
      };
    const { resources, problems } = readResources(loaded.documents);
    const all = [...loaded.problems, ...problems];
    if (all.length > 0) return { ok: false, problems: all };
    return buildSnapshot(resources, upstreamsOf(resources), { source: paths.join(','), generation, now });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return { ok: false, problems: [problem('SY_INTERNAL', `loading ${paths.join(', ')} failed: ${why}`)] };
  }
}

/**
 * Built, this module is JavaScript beside config-worker.js; run from source (the tests), it is
 * TypeScript, and the worker is given a resolver that finds `x.ts` for an import of `x.js`.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const SOURCE_BOOT = `
const { registerHooks } = require('node:module');
registerHooks({
  resolve(specifier, context, next) {
    try { return next(specifier, context); }
    catch (e) { if (!specifier.endsWith('.js')) throw e; return next(specifier.slice(0, -3) + '.ts', context); }
  },
});
import(require('node:worker_threads').workerData.entry);
`;

/** loadPaths on a worker thread, bounded by LOAD_TIMEOUT_MS. */
function loadOffThread(paths: readonly string[]): Promise<LoadResult> {
  const entry = new URL(`./config-worker.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url);
  const resourceLimits = { maxOldGenerationSizeMb: LOAD_HEAP_MB };
  const worker = FROM_SOURCE
    ? new Worker(SOURCE_BOOT, { eval: true, workerData: { paths, entry: entry.href }, resourceLimits })
    : new Worker(entry, { workerData: { paths }, resourceLimits });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve({
        documents: [],
        problems: [
          problem('SY_FILE_READ', `reading ${paths.join(', ')} took more than ${LOAD_TIMEOUT_MS / 1000}s`),
        ],
      });
    }, LOAD_TIMEOUT_MS);
    worker.once('message', (result: LoadResult) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(result);
    });
    worker.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    worker.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the file reader stopped (exit ${code})`));
    });
  });
}

/** Calls `onChange` (debounced) whenever one of the paths, or a file in a folder path, changes. */
export async function watchPaths(
  paths: readonly string[],
  onChange: () => void,
  debounceMs = 100,
): Promise<() => void> {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  for (const p of paths.map((x) => resolve(x))) {
    const isDir = (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
    const dir = isDir ? p : dirname(p);
    const name = basename(p);
    const w = watch(dir, { recursive: false }, (_event, file) => {
      if (isDir || file === null || file === name || file.startsWith('..')) fire();
    });
    w.on('error', () => undefined);
    watchers.push(w);
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
