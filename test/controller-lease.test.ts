/**
 * A replica that cannot take the leader Lease says so: a missing lease namespace or a Forbidden
 * is logged at warn with the API server's reason (once per reason, not every retry) and counted,
 * instead of leaving a silent standby.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../core/common/logger.js';
import { electLeader } from '../kube/leader.js';
import { adminKube } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: false });

describe.skipIf(!shared)('leader election failures', () => {
  it('a lease namespace that does not exist is a warning with the reason, repeated only when it changes', async () => {
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, done) {
          for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
          done();
        },
      }),
    });
    const codes: (number | undefined)[] = [];
    const elector = electLeader(
      adminKube(shared as Envtest),
      {
        namespace: 'no-such-namespace',
        name: 'switchyard-controller-istio',
        identity: 'test',
        retryPeriodMs: 50,
        onError: (code) => codes.push(code),
      },
      logger,
      () => undefined,
    );
    try {
      await new Promise((r) => setTimeout(r, 600));
      expect(elector.isLeader()).toBe(false);
      const warnings = lines.filter((l) => l.level === 40);
      expect(warnings).toHaveLength(1); // many attempts, one warning for one reason
      expect(warnings[0]?.msg).toMatch(/cannot take the leader lease: this replica stays a standby/);
      expect(warnings[0]?.reason).toMatch(/404 .*namespaces "no-such-namespace" not found/);
      expect(codes.length).toBeGreaterThan(3);
      expect(new Set(codes)).toEqual(new Set([404]));
    } finally {
      await elector.stop();
    }
  });
});
