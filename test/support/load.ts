/**
 * A steady load generator for end-to-end runs: one request at a time, 5 ms apart, recording each
 * answer's status, the upstream that served it (`x-switchyard-upstream`) and when, until stopped.
 * A request that fails to connect is recorded with status 0.
 */
import { header, type Reply } from './http.js';

export interface Answer {
  status: number;
  upstream: string | undefined;
  at: number;
}

export interface SteadyLoad {
  answers: Answer[];
  /** The answers since `from` (ms since the epoch). */
  since(from: number): Answer[];
  /** Whether the last `n` answers all came from `upstream`. */
  lastFrom(upstream: string, n?: number): boolean;
  stop(): Promise<void>;
}

export function steadyLoad(request: () => Promise<Reply>): SteadyLoad {
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await request().catch(() => ({ status: 0, headers: {}, body: '' }));
      answers.push({ status: r.status, upstream: header(r, 'x-switchyard-upstream'), at: Date.now() });
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    answers,
    since: (from) => answers.filter((a) => a.at >= from),
    lastFrom(upstream, n = 20) {
      const recent = answers.slice(-n);
      return recent.length === n && recent.every((a) => a.upstream === upstream);
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
