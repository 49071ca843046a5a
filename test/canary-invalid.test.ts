/**
 * A progressive run whose policy is edited mid-run into one the controller marks Invalid (issue 27):
 * the run holds at its weight, neither stepping nor promoting (before, the canary queue never
 * validated, stepped on and promoted, and promotion removed the invalid part and the Invalid
 * condition with it), says so once in an Event, and goes on once the spec validates again.
 * On a real API server (the CRD schema lets the edit through; the validator does not).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { canaryRunByHand } from './support/canary-run.js';
import { adminKube, createNamespace, stableWorkload } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: false });
const API = 'switchyard.dev/v1alpha1';

describe.skipIf(!shared)('a canary run and an invalid spec', () => {
  it('holds while the spec does not validate, then goes on to promotion', async () => {
    const namespace = 'canary-invalid';
    const admin = adminKube(shared as Envtest);
    await createNamespace(admin, namespace);
    await stableWorkload(admin, namespace, 'shop');
    const policy = (intercepts: object[]) =>
      ({
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['invalid.test'],
          stable: 'v1',
          intercepts,
          canary: {
            version: 'v2',
            steps: [
              { weight: 20, pause: '0s' },
              { weight: 50, pause: '0s' },
            ],
            autoPromote: true,
          },
        },
      }) as KubernetesObject;
    await admin.apply(policy([]), 'release-engineer', true);
    const { run, status, told } = canaryRunByHand(admin, namespace, 'shop', 'istio');
    expect((await run()).weightChanged).toBe(true);
    expect(await status()).toMatchObject({ weight: 20 });

    // Not RE2 (a lookahead): the CRD schema takes it, the validator refuses it.
    const lookahead = [{ name: 'bad', match: { header: 'x-a', regex: 'a(?=b)' }, to: { version: 'v2' } }];
    await admin.apply(policy(lookahead), 'release-engineer', true);
    for (let i = 0; i < 3; i++) expect(await run()).toMatchObject({ weightChanged: false });
    expect(await status()).toMatchObject({ weight: 20, step: 0 });
    const live = await admin.get<KubernetesObject & { spec: { stable: string } }>({
      apiVersion: API,
      kind: 'TrafficPolicy',
      namespace,
      name: 'shop',
    });
    expect(live?.spec.stable).toBe('v1'); // not promoted
    const held = told.filter((t) => t.startsWith('InvalidSpec: '));
    expect(held).toEqual([
      expect.stringMatching(
        /^InvalidSpec: the canary run of v2 holds until the spec validates: .*regex.*SY_INVALID_REGEX/,
      ),
    ]);

    await admin.apply(policy([]), 'release-engineer', true);
    for (let i = 0; i < 4; i++) await run();
    const promoted = await admin.get<KubernetesObject & { spec: { stable: string } }>({
      apiVersion: API,
      kind: 'TrafficPolicy',
      namespace,
      name: 'shop',
    });
    expect(promoted?.spec.stable).toBe('v2');
  });
});
