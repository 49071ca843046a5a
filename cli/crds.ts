import { customResourceDefinitions } from '../core/resources/crds.js';
import { type CliIO, EXIT_OK } from './io.js';
import { formatObjects } from './output.js';

export function crdsCommand(opts: { output: string }, io: CliIO): number {
  io.stdout(formatObjects(customResourceDefinitions(), opts.output));
  return EXIT_OK;
}
