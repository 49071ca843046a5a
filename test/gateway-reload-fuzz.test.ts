/**
 * Reload fuzz (issue 27): hostile files written over the watched configuration while traffic flows.
 * Every request is answered by the last good plan, and the tail latency stays where it is without
 * reloads: p99 within 50 ms of a run of the same load with no reloads, measured in the same test
 * (the files are read and parsed on a worker thread, off the traffic port's event loop).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE, POLICY, webGateway } from './support/hostile-files.js';
import { header, send } from './support/http.js';

const CLIENTS = 8;
const PHASE_MS = 3000;

/** CLIENTS loops of requests for PHASE_MS: each request's latency and what it was answered with. */
async function load(base: string): Promise<{ latencies: number[]; wrong: string[] }> {
  const latencies: number[] = [];
  const wrong: string[] = [];
  const until = Date.now() + PHASE_MS;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < until) {
        const t = performance.now();
        const r = await send(base, { host: 'web.test' }).catch((e: Error) => ({
          status: 0,
          headers: {},
          body: e.message,
        }));
        latencies.push(performance.now() - t);
        const by = header(r as never, 'x-switchyard-upstream');
        if (r.status !== 200 || by !== 'web/v1') wrong.push(`${r.status} ${by} ${r.body.slice(0, 80)}`);
      }
    }),
  );
  return { latencies, wrong };
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)] as number;

/** A megabyte of YAML broken on every line, and a megabyte of valid YAML that is not a resource. */
const LARGE = [
  `${POLICY}---\n${'a: [b, c\n'.repeat(110_000)}`,
  `${POLICY}---\n${Array.from({ length: 40_000 }, (_, i) => `k${i}: {a: [${i}, 2], b: "x${i}"}`).join('\n')}\n`,
];

describe('reload fuzz', () => {
  let served: Awaited<ReturnType<typeof webGateway>>;
  beforeAll(async () => {
    served = await webGateway();
  });
  afterAll(() => served.close());

  it('hostile files written over the config while traffic flows: no failed request, p99 within 50 ms', async () => {
    const { gw } = served;
    const quiet = await load(gw.base);
    const files = [...HOSTILE.map(([, text]) => text), ...LARGE];
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        gw.write(files[written % files.length] as string);
        written++;
        // Past the watcher's 100 ms debounce, so each write is a reload.
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const fuzzed = await load(gw.base);
    writing = false;
    await writer;

    expect(quiet.wrong).toEqual([]);
    expect(fuzzed.wrong).toEqual([]);
    expect(written).toBeGreaterThan(files.length);
    expect(gw.holder.failures).toBeGreaterThan(0);
    const figures = { quietP99: p99(quiet.latencies), fuzzedP99: p99(fuzzed.latencies), written };
    console.log(`reload fuzz: ${JSON.stringify(figures)}`);
    expect(figures.fuzzedP99 - figures.quietP99).toBeLessThan(50);
  });
});
