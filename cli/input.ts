/** The pipeline every offline command shares: paths → documents → resources → RoutePlan. */

import { formatProblem, type Problem } from '../core/common/errors.js';
import { compile } from '../core/compiler/compile.js';
import type { RoutePlan } from '../core/compiler/plan.js';
import { loadPaths } from '../core/resources/load.js';
import { type Resources, readResources } from '../core/resources/validate.js';
import { type CliIO, EXIT_INVALID } from './io.js';

export interface Compiled {
  resources: Resources;
  plan: RoutePlan;
  problems: Problem[];
}

export async function loadAndCompile(paths: readonly string[], clusterDomain?: string): Promise<Compiled> {
  const loaded = await loadPaths(paths);
  const { resources, problems } = readResources(loaded.documents);
  const compiled = compile(resources, {
    sources: resources.sources,
    ...(clusterDomain ? { clusterDomain } : {}),
  });
  return {
    resources,
    plan: compiled.plan,
    problems: [...loaded.problems, ...problems, ...compiled.problems],
  };
}

/** Prints one line per problem; returns the exit code for invalid input, or undefined if none. */
export function reportProblems(problems: readonly Problem[], io: CliIO): number | undefined {
  if (problems.length === 0) return undefined;
  for (const p of problems) io.stderr(`${formatProblem(p)}\n`);
  io.stderr(`${problems.length} problem${problems.length === 1 ? '' : 's'} found; nothing was written\n`);
  return EXIT_INVALID;
}
