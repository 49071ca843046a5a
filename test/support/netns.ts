/**
 * Test hosts that are neither loopback nor the machine's own address: a network namespace made by
 * this test run (`ip netns add`), joined to the host by a veth pair, with one address per test host
 * on its end, and upstream processes started inside it with `ip netns exec`. EndpointSlices refuse
 * loopback addresses, so this is how a test gives Kubernetes "pod" addresses that only reach
 * processes the test started. Needs root and `ip` (CI runs as root); elsewhere `testNetnsAvailable`
 * is false and those tests skip with a line saying so, while under CI=true that is a failure.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';

export function testNetnsAvailable(): boolean {
  return process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0;
}

export interface NetnsUpstream {
  name: string;
  address: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

export interface TestNetns {
  name: string;
  /** The host end of the veth pair. */
  hostAddress: string;
  /** A new address inside the namespace, for one test host. */
  addAddress(): string;
  /**
   * An upstream process in the namespace that answers with `name`; `program` runs another script
   * of test/support instead (it gets `name address ...args` and prints its port).
   */
  startUpstream(
    name: string,
    address?: string,
    program?: { script: string; args: string[] },
  ): Promise<NetnsUpstream>;
  close(): Promise<void>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/**
 * A namespace with a veth pair in 198.18.<k>.0/24 (RFC 2544's range for tests; `k` drawn so test
 * files running side by side do not collide): the host end is .1, test hosts .2 and up.
 */
export async function createTestNetns(): Promise<TestNetns> {
  const k = randomInt(1, 250);
  const id = `${process.pid % 10000}${k}`;
  const name = `sy-test-${id}`;
  const hostIf = `syh${id}`.slice(0, 15);
  const nsIf = `syn${id}`.slice(0, 15);
  const prefix = `198.18.${k}`;
  ip('netns', 'add', name);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  ip('link', 'set', nsIf, 'netns', name);
  ip('addr', 'add', `${prefix}.1/24`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', name, 'ip', 'link', 'set', nsIf, 'up');
  let next = 2;
  const children: ChildProcess[] = [];
  const addAddress = () => {
    const address = `${prefix}.${next++}`;
    ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/24`, 'dev', nsIf);
    return address;
  };
  return {
    name,
    hostAddress: `${prefix}.1`,
    addAddress,
    async startUpstream(
      upstreamName,
      address = addAddress(),
      program = { script: 'netns-upstream.mjs', args: [] },
    ) {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          name,
          process.execPath,
          join(import.meta.dirname, program.script),
          upstreamName,
          address,
          ...program.args,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      children.push(child);
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout?.once('data', (d) => resolve(Number(String(d).trim())));
        child.once('exit', (code) => reject(new Error(`upstream ${upstreamName} exited (${code})`)));
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      return {
        name: upstreamName,
        address,
        port,
        url: `http://${address}:${port}`,
        close: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      };
    },
    async close() {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      spawnSync('ip', ['link', 'del', hostIf]);
      spawnSync('ip', ['netns', 'del', name]);
    },
  };
}
