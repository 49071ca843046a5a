import { createLogger } from '../core/common/logger.js';
import { runDemo } from '../gateway/demo.js';
import { waitForShutdown } from './gateway.js';
import { type CliIO, EXIT_OK } from './io.js';

export async function demoCommand(
  opts: { port: string; adminPort: string; host: string; logLevel: string },
  io: CliIO,
): Promise<number> {
  const demo = await runDemo({
    port: Number(opts.port),
    adminPort: Number(opts.adminPort),
    host: opts.host,
    logger: createLogger({ level: opts.logLevel }),
  });
  io.stdout(
    `Switchyard demo: the gateway is on ${demo.gateway.trafficUrl}, its admin API on ${demo.gateway.adminUrl}.\n`,
  );
  io.stdout(`Configuration: ${demo.configFile} (edit it; the gateway reloads).\n\nTry:\n\n`);
  for (const line of demo.lines) io.stdout(`# ${line.says}\n${line.command}\n\n`);
  io.stdout('Ctrl-C stops the demo.\n');
  await waitForShutdown(demo, (m) => io.stderr(`${m}\n`));
  return EXIT_OK;
}
