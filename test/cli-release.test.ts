/**
 * The release engineer's and tester's commands against a real API server, through the CLI as a
 * person types them (kubeconfig file, -n, -o): canary promote/abort, intercept add/remove/list,
 * preview list/delete and status; each with the error a person gets for a mistake, after which
 * nothing has changed.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { patchPolicySpec, readPolicy } from '../cli/kube-cli.js';
import type { Kube } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: false });
const ns = 'release';
const API = 'switchyard.dev/v1alpha1';

type Spec = {
  stable: string;
  canary?: { version: string; weight: number; sticky?: object };
  intercepts?: { name: string; match: Record<string, string>; to: Record<string, string> }[];
};

describe.skipIf(!shared)('release CLI on a real API server', () => {
  let kube: Kube;
  let kubeconfig: string;
  const run = (...args: string[]) => cli(...args, '-n', ns, '--kubeconfig', kubeconfig);
  const spec = async (name = 'checkout') =>
    (
      await kube.get<KubernetesObject & { spec: Spec }>({
        apiVersion: API,
        kind: 'TrafficPolicy',
        namespace: ns,
        name,
      })
    )?.spec;
  const policy = (name: string, extra: Record<string, unknown>) =>
    kube.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name, namespace: ns },
        spec: { service: name, port: 80, stable: 'v1', ...extra },
      } as KubernetesObject,
      'gitops',
      true,
    );

  beforeAll(async () => {
    const env = shared as Envtest;
    kube = adminKube(env);
    kubeconfig = join(tempFiles({ kubeconfig: env.adminKubeconfig }), 'kubeconfig');
    await createNamespace(kube, ns);
    await policy('checkout', { canary: { version: 'v2', weight: 20, sticky: {} } });
    await policy('cart', { canary: { version: 'v5', weight: 35, sticky: { cookie: 'cart-canary' } } });
  });

  it('canary abort: weight 0 and stickiness cleared', async () => {
    const r = await run('canary', 'abort', 'cart');
    expect(r).toMatchObject({
      code: 0,
      stdout: `${ns}/cart: canary v5 aborted: weight 35 -> 0, sticky cookies cleared\n`,
    });
    expect((await spec('cart'))?.canary).toEqual({ version: 'v5', weight: 0 });
  });

  it('canary promote: the canary becomes stable and the canary section goes', async () => {
    const r = await run('canary', 'promote', 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${ns}/checkout: v2 promoted to stable (was v1); no canary now\n`);
    const s = await spec();
    expect(s?.stable).toBe('v2');
    expect(s?.canary).toBeUndefined();
    const again = await run('canary', 'promote', 'checkout');
    expect(again).toMatchObject({ code: 2 });
    expect(again.stderr).toMatch(/has no canary to promote/);
    expect((await run('canary', 'abort', 'nope')).stderr).toMatch(/no TrafficPolicy release\/nope/);
  });

  it('intercept add, list and remove; mistakes are refused with nothing changed', async () => {
    const add = await run(
      'intercept',
      'add',
      'checkout',
      'alice',
      '--header',
      'x-user',
      '--exact',
      'alice',
      '--to-version',
      'v3',
    );
    expect(add).toMatchObject({
      code: 0,
      stdout: `${ns}/checkout: intercept alice added (header x-user = alice -> v3)\n`,
    });
    await run(
      'intercept',
      'add',
      'checkout',
      'beta',
      '--baggage',
      'tenant',
      '--prefix',
      'beta-',
      '--to-preview',
      'pr-42',
    );
    expect((await spec())?.intercepts?.map((i) => i.name)).toEqual(['alice', 'beta']);

    const list = await run('intercept', 'list', 'checkout');
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+MATCH\s+TO\s+TOKEN$/);
    expect(list.stdout).toMatch(/alice\s+header x-user = alice\s+v3\s+-/);
    expect(list.stdout).toMatch(/beta\s+baggage tenant starts with beta-\s+preview pr-42/);
    expect(JSON.parse((await run('intercept', 'list', 'checkout', '-o', 'json')).stdout)).toHaveLength(2);

    const before = await spec();
    const duplicate = await run(
      'intercept',
      'add',
      'checkout',
      'alice',
      '--header',
      'x-user',
      '--exact',
      'bob',
      '--to-version',
      'v3',
    );
    expect(duplicate.stderr).toMatch(/already has an intercept alice/);
    const twoMatches = await run(
      'intercept',
      'add',
      'checkout',
      'x',
      '--header',
      'h',
      '--exact',
      'a',
      '--prefix',
      'b',
      '--to-version',
      'v3',
    );
    expect(twoMatches.stderr).toMatch(
      /give exactly one of --exact, --prefix, --regex \(how to match\); got 2/,
    );
    const badRegex = await run(
      'intercept',
      'add',
      'checkout',
      'bad',
      '--header',
      'h',
      '--regex',
      '(a',
      '--to-version',
      'v3',
    );
    expect(badRegex.code).toBe(2);
    expect(badRegex.stderr).toMatch(
      /release\/checkout:document 1: spec\.intercepts\[2\]\.match\.regex: expected an RE2 regular expression.*\[SY_INVALID_REGEX\]/,
    );
    expect(badRegex.stderr).toMatch(/nothing was changed/);
    expect(await spec()).toEqual(before);

    expect((await run('intercept', 'remove', 'checkout', 'alice')).code).toBe(0);
    expect((await spec())?.intercepts?.map((i) => i.name)).toEqual(['beta']);
    expect((await run('intercept', 'remove', 'checkout', 'alice')).stderr).toMatch(
      /has no intercept alice \(it has: beta\)/,
    );
    expect((await run('intercept', 'remove', 'checkout', 'beta')).code).toBe(0);
    expect((await spec())?.intercepts).toBeUndefined();
  });

  it('a change made by someone else since the read is refused, not overwritten', async () => {
    const stale = await readPolicy(kube, ns, 'cart');
    await policy('cart', { canary: { version: 'v5', weight: 10 } }); // someone else
    const err = (await patchPolicySpec(
      kube,
      stale as NonNullable<typeof stale>,
      { stable: 'v9' },
      {
        stdout: () => undefined,
        stderr: () => undefined,
      },
    ).catch((e) => e)) as { code?: number };
    expect(err.code).toBe(409);
    expect((await spec('cart'))?.stable).toBe('v1');
  });

  it('preview list shows repository, PR, SHA, phase, URL and age; preview delete removes one', async () => {
    for (const [pr, commit] of [
      [42, '7f3a2c1e9b'],
      [7, '0a1b2c3d4e'],
    ] as const) {
      await kube.apply(
        {
          apiVersion: API,
          kind: 'Preview',
          metadata: { name: `checkout-pr-${pr}-${commit.slice(0, 7)}`, namespace: ns },
          spec: { policy: 'checkout', repository: 'acme/shop', pullRequest: pr, commit },
        } as KubernetesObject,
        'pr-bot',
        true,
      );
    }
    const live = await kube.get<KubernetesObject>({
      apiVersion: API,
      kind: 'Preview',
      namespace: ns,
      name: 'checkout-pr-42-7f3a2c1',
    });
    await kube.replaceStatus('switchyard.dev', 'v1alpha1', 'previews', {
      ...live,
      status: { phase: 'Ready', url: 'https://pr-42--checkout.preview.example.com' },
    } as KubernetesObject);

    const list = await run('preview', 'list');
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+REPOSITORY\s+PR\s+SHA\s+PHASE\s+URL\s+AGE$/);
    expect(lines[1]).toMatch(
      /^release\s+checkout-pr-7-0a1b2c3\s+acme\/shop\s+#7\s+0a1b2c3\s+Pending\s+-\s+\d+s$/,
    );
    expect(lines[2]).toMatch(
      /^release\s+checkout-pr-42-7f3a2c1\s+acme\/shop\s+#42\s+7f3a2c1\s+Ready\s+https:\/\/pr-42--checkout\.preview\.example\.com\s+\d+s$/,
    );

    const status = JSON.parse((await run('status', '-o', 'json')).stdout) as {
      policy: string;
      stable: string;
      previews: { pullRequest: number; phase: string; url: string | null }[];
    }[];
    expect(status.map((s) => s.policy)).toEqual([`${ns}/cart`, `${ns}/checkout`]);
    expect(status[1]).toMatchObject({
      stable: 'v2',
      previews: [
        { pullRequest: 7, phase: 'Pending', url: null },
        { pullRequest: 42, phase: 'Ready', url: 'https://pr-42--checkout.preview.example.com' },
      ],
    });
    const text = (await run('status')).stdout;
    expect(text).toMatch(/release\/cart {2}not reconciled yet\n {2}stable: +v1\n {2}canary: +v5 at 10%/);
    expect(text).toMatch(/#42 7f3a2c1 Ready https:\/\/pr-42--checkout\.preview\.example\.com/);

    expect((await run('preview', 'delete', 'checkout-pr-7-0a1b2c3')).code).toBe(0);
    expect(
      await kube.get({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'checkout-pr-7-0a1b2c3' }),
    ).toBeUndefined();
    expect((await run('preview', 'delete', 'checkout-pr-7-0a1b2c3')).stderr).toMatch(
      /no Preview release\/checkout-pr-7-0a1b2c3/,
    );
  });
});
