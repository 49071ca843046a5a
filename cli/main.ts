/**
 * The `switchyard` command. Exit codes (docs/cli.md): 0 success, 2 invalid input (one line per
 * problem: `file:document N: spec.path: what was expected`), 1 an internal failure. Never a stack
 * trace for bad input; SWITCHYARD_DEBUG=1 adds one for internal failures. Each command's flags are
 * defined beside the module that runs it (`cli/<command>-command.ts` beside `cli/<command>.ts`),
 * and that module is loaded only when its command runs: `validate` and `render` never load the
 * Kubernetes client (0.4 s of start-up; load-tests/README.md, "Configuration files").
 */
import { Command, CommanderError } from 'commander';
import { formatProblem, problem } from '../core/common/errors.js';
import { defineCanary } from './canary-command.js';
import { defineController } from './controller-command.js';
import { defineCrds } from './crds-command.js';
import { defineDemo } from './demo-command.js';
import { defineExplain } from './explain-command.js';
import { defineGateway } from './gateway-command.js';
import { defineInstall } from './install-command.js';
import { defineIntercept } from './intercepts-command.js';
import { type CliIO, EXIT_INTERNAL, EXIT_INVALID, processIO } from './io.js';
import { definePreview } from './previews-command.js';
import { defineRender } from './render-command.js';
import { readSettings, type Settings } from './settings.js';
import { defineStatus } from './status-command.js';
import { defineToken } from './token-command.js';
import { defineValidate } from './validate-command.js';

/** Every command, in the order `--help` lists them; each defined beside the module that runs it. */
const COMMANDS = [
  defineRender,
  defineValidate,
  defineExplain,
  defineGateway,
  defineDemo,
  defineToken,
  defineController,
  defineCanary,
  defineIntercept,
  definePreview,
  defineStatus,
  defineInstall,
  defineCrds,
];

export function buildProgram(
  io: CliIO,
  setExit: (code: number) => void,
  settings: Settings = readSettings(process.env),
): Command {
  const program = new Command('switchyard')
    .description(
      'Previews, intercepts, canaries and rate limits for Kubernetes, with Istio or without a mesh',
    )
    .version(settings.version)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');

  const context = { io, setExit, settings };
  for (const define of COMMANDS) define(program, context);
  return program;
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  let code = 0;
  const settings = readSettings(process.env);
  const program = buildProgram(
    io,
    (c) => {
      code = c;
    },
    settings,
  );
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; a usage error is invalid input.
      return e.exitCode === 0 ? 0 : EXIT_INVALID;
    }
    io.stderr(
      `${formatProblem(problem('SY_INTERNAL', `internal error: ${e instanceof Error ? e.message : String(e)}`))}\n`,
    );
    if (settings.debug && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
    return EXIT_INTERNAL;
  }
}

export async function main(): Promise<void> {
  // A reader that stops early (`switchyard render | head`) closes the pipe: stop quietly, as Unix
  // tools do, instead of an unhandled EPIPE.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await runCli(process.argv.slice(2), processIO());
}
