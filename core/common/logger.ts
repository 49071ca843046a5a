/** Structured logs (pino). One logger is made at the edge (the CLI) and handed down. */
import { type Logger, pino } from 'pino';

export function createLogger(
  options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      name: options.name ?? 'switchyard',
      level: options.level ?? 'info',
    },
    (options.destination ?? process.stderr) as never,
  );
}

export type { Logger };
