import { loadAndCompile, reportProblems } from './input.js';
import { type CliIO, EXIT_OK } from './io.js';

export async function validateCommand(opts: { file: string[] }, io: CliIO): Promise<number> {
  const { resources, problems } = await loadAndCompile(opts.file);
  const failed = reportProblems(problems, io);
  if (failed !== undefined) return failed;
  const n = resources.policies.length;
  const m = resources.previews.length;
  io.stdout(`valid: ${n} TrafficPolic${n === 1 ? 'y' : 'ies'}, ${m} Preview${m === 1 ? '' : 's'}\n`);
  return EXIT_OK;
}
