/**
 * The gateway's file source: the same YAML the renderer reads (TrafficPolicies, Previews) plus a
 * GatewayConfig document mapping upstream keys to URLs. Watches the files' folders, because
 * editors and ConfigMap mounts replace files by rename rather than writing in place.
 */
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { loadPaths } from '../src/resources/load.js';
import { readResources } from '../src/resources/validate.js';
import { type BuildResult, buildSnapshot, upstreamsOf } from './snapshot.js';

export async function loadGatewayFiles(
  paths: readonly string[],
  generation: number,
  now: Date,
): Promise<BuildResult> {
  const loaded = await loadPaths(paths);
  const { resources, problems } = readResources(loaded.documents);
  const all = [...loaded.problems, ...problems];
  if (all.length > 0) return { ok: false, problems: all };
  return buildSnapshot(resources, upstreamsOf(resources), { source: paths.join(','), generation, now });
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
