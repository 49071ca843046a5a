/**
 * The PR bot end to end (issue 4, acceptance 1): the real `switchyard controller` process, as its
 * ServiceAccount on the envtest API server, configured from the environment as in a cluster (webhook
 * secret, GitHub App id and private key, the API URL of a local GitHub stand-in that checks the
 * App's JWT and issues installation tokens). Real @octokit/webhooks-examples payloads, signed with
 * the real HMAC, are posted over HTTP. What GitHub is told is read back from the stand-in.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREVIEW_LABEL } from '../core/resources/labels.js';
import type { Kube } from '../kube/client.js';
import { tempFiles } from './support/cli.js';
import {
  adminKube,
  applyRbac,
  CONTROLLER_USER,
  createNamespace,
  markAvailable,
  stableWorkload,
} from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { examplesOf, postDelivery, pullRequestEvent, sha } from './support/github-deliveries.js';
import { type GithubStandIn, githubAppKeys, startGithubStandIn } from './support/github-stand-in.js';
import { type Started, startProcess } from './support/process.js';
import { unusedPort } from './support/upstreams.js';

const shared = await sharedEnvtest({ istio: true });
const ns = 'prbot';
const SECRET = 'pr bot webhook secret';
const REPO = 'Codertocat/Hello-World';
const API = 'switchyard.dev/v1alpha1';

describe.skipIf(!shared)('PR bot: webhooks in, comment, statuses and deployments out', () => {
  let env: Envtest;
  let admin: Kube;
  let github: GithubStandIn;
  let controller: Started;
  let url: string;
  let delivery = 0;
  const post = (payload: unknown, secret: string | null = SECRET) =>
    postDelivery(url, 'pull_request', payload, { id: `d-${++delivery}`, secret });

  const previews = async () =>
    (await admin.list<KubernetesObject & { spec: { commit: string } }>(API, 'Preview', ns)).map((p) => ({
      name: p.metadata?.name as string,
      deleting: Boolean(p.metadata?.deletionTimestamp),
    }));
  const comments = (pr: number) => github.comments.get(`${REPO}#${pr}`) ?? [];
  const deploymentsOf = (pr: number) =>
    (github.deployments.get(REPO) ?? []).filter((d) => d.environment === `preview/pr-${pr}`);
  const statusesOf = (commit: string) => github.statuses.get(`${REPO}@${commit}`) ?? [];
  /** Plays kubelet for the preview Deployment of this commit. */
  const deploy = async (pr: number, commit: string) => {
    const name = `hello-pr-${pr}-${commit.slice(0, 7)}`;
    await eventually(
      async () =>
        (await admin.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name })) !== undefined,
      20_000,
    );
    await markAvailable(env, ns, name);
  };

  beforeAll(async () => {
    env = shared as Envtest;
    admin = adminKube(env);
    await applyRbac(admin);
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'hello');
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'hello', namespace: ns },
        spec: {
          service: 'hello',
          port: 80,
          stable: 'v1',
          previews: {
            repository: REPO,
            image: 'ghcr.io/codertocat/hello:{sha7}',
            domain: 'preview.example.com',
            gateway: 'istio-system/previews',
            maxPerPullRequest: 2,
          },
        },
      } as KubernetesObject,
      'test',
      true,
    );
    // A policy for a repository the App is not installed on.
    await stableWorkload(admin, ns, 'other');
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'other', namespace: ns },
        spec: {
          service: 'other',
          port: 80,
          stable: 'v1',
          previews: { repository: 'acme/not-installed', image: 'ghcr.io/acme/other:{sha7}' },
        },
      } as KubernetesObject,
      'test',
      true,
    );
    // A GitHub App as GitHub hands it out: an id and a PKCS#1 private key.
    const keys = githubAppKeys();
    github = await startGithubStandIn({
      app: { id: '4242', publicKeyPem: keys.publicKey, installationId: 77, repositories: [REPO] },
    });
    const dir = tempFiles({
      kubeconfig: env.kubeconfigFor(CONTROLLER_USER),
      'app.pem': keys.privateKey,
    });
    const port = await unusedPort();
    url = `http://127.0.0.1:${port}`;
    controller = startProcess(
      [
        'controller',
        '--kubeconfig',
        join(dir, 'kubeconfig'),
        '-n',
        ns,
        '--port',
        String(port),
        '--no-leader-elect',
      ],
      {
        SWITCHYARD_LOG_LEVEL: process.env.SWITCHYARD_TEST_LOG ?? 'warn',
        SWITCHYARD_GITHUB_WEBHOOK_SECRET: SECRET,
        SWITCHYARD_GITHUB_APP_ID: '4242',
        SWITCHYARD_GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'app.pem'),
        SWITCHYARD_GITHUB_API_URL: github.url,
      },
    );
    await eventually(
      async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200,
      30_000,
    );
  }, 120_000);
  afterAll(async () => {
    if (process.env.SWITCHYARD_TEST_LOG) process.stderr.write(controller?.output() ?? '');
    controller?.child.kill('SIGTERM');
    await controller?.exited;
    await github?.close();
  });

  it('refuses a missing or wrong signature with 401 and creates no Preview', async () => {
    const opened = pullRequestEvent('opened', 1, sha(1, 1), 0);
    expect(await post(opened, null)).toBe(401);
    expect(await post(opened, 'not the secret')).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(await previews()).toEqual([]);
    expect(github.calls).toEqual([]);
  });

  it('opened → Preview → available → one comment, a success status and a deployment with the URL', async () => {
    const commit = sha(1, 1);
    expect(await post(pullRequestEvent('opened', 1, commit, 0))).toBe(202);
    await deploy(1, commit);
    const previewUrl = 'https://pr-1--hello.preview.example.com';
    await eventually(() => statusesOf(commit).some((s) => s.state === 'success'), 20_000);
    await eventually(() => deploymentsOf(1)[0]?.statuses.some((s) => s.state === 'success'), 20_000);
    await eventually(() => comments(1)[0]?.body.includes('| Ready |'), 20_000);

    expect(comments(1)).toHaveLength(1);
    const body = comments(1)[0]?.body as string;
    expect(body).toContain(`| hello | \`${commit.slice(0, 7)}\` | Ready | <${previewUrl}> |`);
    expect(body).toContain('`x-switchyard-preview: pr-1`');
    expect(body).toContain(`\`x-switchyard-preview: pr-1-${commit.slice(0, 7)}\``);
    expect(statusesOf(commit).at(-1)).toMatchObject({
      state: 'success',
      context: 'switchyard/preview',
      target_url: previewUrl,
    });
    const [deployment] = deploymentsOf(1);
    expect(deployment).toMatchObject({ sha: commit, task: 'deploy:hello', environment: 'preview/pr-1' });
    expect(deployment?.statuses.map((s) => s.state)).toEqual(['in_progress', 'success']);
    expect(deployment?.statuses.at(-1)).toMatchObject({ environment_url: previewUrl });
    // Everything went out as the App's installation: its token, fetched with the App's JWT.
    const auth = new Set(
      github.calls.map(
        (c) =>
          `${c.path.startsWith('/repos/') && !c.path.endsWith('/installation') ? 'repo' : 'app'} ${c.auth}`,
      ),
    );
    expect([...auth].sort()).toEqual(['app bearer eyJh…', 'repo token ghs_…']);
  });

  it('a redelivered delivery id is not acted on twice', async () => {
    const before = github.calls.length;
    const payload = pullRequestEvent('synchronize', 1, sha(1, 9), 5);
    const id = 'redelivered-1';
    expect(await postDelivery(url, 'pull_request', payload, { id, secret: SECRET })).toBe(202);
    expect(await postDelivery(url, 'pull_request', payload, { id, secret: SECRET })).toBe(202);
    await eventually(
      async () => (await previews()).some((p) => p.name === `hello-pr-1-${sha(1, 9).slice(0, 7)}`),
      10_000,
    );
    await deploy(1, sha(1, 9));
    await eventually(() => comments(1)[0]?.body.includes(sha(1, 9).slice(0, 7)), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    // One Preview and one deployment for the commit, however often it was delivered.
    expect((await previews()).filter((p) => p.name.endsWith(sha(1, 9).slice(0, 7)))).toHaveLength(1);
    expect(deploymentsOf(1).filter((d) => d.sha === sha(1, 9))).toHaveLength(1);
    expect(
      github.calls.slice(before).filter((c) => c.method === 'POST' && c.path.endsWith('/comments')),
    ).toEqual([]);
  });

  it('synchronize edits the same comment; out of order, the newest commit wins', async () => {
    const newer = sha(1, 3);
    const older = sha(1, 2);
    expect(await post(pullRequestEvent('synchronize', 1, newer, 30))).toBe(202);
    expect(await post(pullRequestEvent('synchronize', 1, older, 20))).toBe(202);
    await deploy(1, newer);
    await eventually(() => comments(1)[0]?.body.includes(`\`${newer.slice(0, 7)}\` | Ready`), 20_000);
    const names = (await previews()).filter((p) => !p.deleting).map((p) => p.name);
    expect(names).toContain(`hello-pr-1-${newer.slice(0, 7)}`);
    expect(names).not.toContain(`hello-pr-1-${older.slice(0, 7)}`);
    expect(comments(1)).toHaveLength(1);
    expect(comments(1)[0]?.body).not.toContain(older.slice(0, 7));
  });

  it('a GitHub answering 500 and then 200 still gets the update, once', async () => {
    const commit = sha(1, 4);
    github.failNext(3);
    expect(await post(pullRequestEvent('synchronize', 1, commit, 40))).toBe(202);
    await deploy(1, commit);
    await eventually(() => comments(1)[0]?.body.includes(`\`${commit.slice(0, 7)}\` | Ready`), 30_000);
    expect(github.calls.filter((c) => c.status === 500).length).toBeGreaterThanOrEqual(3);
    expect(comments(1)).toHaveLength(1);
    expect(statusesOf(commit).filter((s) => s.state === 'success')).toHaveLength(1);
    expect(deploymentsOf(1).filter((d) => d.sha === commit)).toHaveLength(1);
  });

  it('closed while GitHub is down: workloads go at once, the Previews wait for GitHub, then all is told', async () => {
    github.down = true;
    expect(await post(pullRequestEvent('closed', 1, sha(1, 4), 50))).toBe(202);
    // The controller is not blocked: routes and workloads are removed during the outage...
    await eventually(
      async () => (await admin.list('apps/v1', 'Deployment', ns, PREVIEW_LABEL)).length === 0,
      20_000,
    );
    // ...while the Previews are held until GitHub has heard of their removal.
    await new Promise((r) => setTimeout(r, 1000));
    const held = await previews();
    expect(held.length).toBeGreaterThan(0);
    expect(held.every((p) => p.deleting)).toBe(true);

    github.down = false;
    await eventually(async () => (await previews()).length === 0, 90_000);
    expect(comments(1)).toHaveLength(1);
    expect(comments(1)[0]?.body).toContain('No preview is running for this pull request.');
    for (const d of deploymentsOf(1)) expect(d.statuses.at(-1)?.state).toBe('inactive');
  }, 120_000);

  it('a repository the App is not installed on: refused, counted, and a closed pull request still leaves nothing', async () => {
    const payload = (action: string, minute: number) =>
      pullRequestEvent(action, 9, sha(9, 1), minute, 'acme/not-installed');
    expect(await post(payload('opened', 0))).toBe(202);
    await eventually(async () => (await previews()).some((p) => p.name.startsWith('other-pr-9')), 10_000);
    const refused = async () =>
      (await (await fetch(`${url}/metrics`)).text())
        .split('\n')
        .find((l) =>
          l.startsWith('switchyard_controller_github_reports_total{result="refused",status="404"}'),
        );
    await eventually(refused, 20_000);
    expect(await post(payload('closed', 1))).toBe(202);
    await eventually(async () => !(await previews()).some((p) => p.name.startsWith('other-pr-9')), 20_000);
    expect(github.comments.get('acme/not-installed#9')).toBeUndefined();
  });

  it('push and ping are acknowledged and change nothing; reopened brings the preview back under the same comment', async () => {
    const before = github.calls.length;
    expect(await postDelivery(url, 'push', examplesOf('push')[0], { id: 'push-1', secret: SECRET })).toBe(
      202,
    );
    expect(await postDelivery(url, 'ping', examplesOf('ping')[0], { id: 'ping-1', secret: SECRET })).toBe(
      202,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(await previews()).toEqual([]);
    // (Calls for the repository the App is not installed on may still be settling.)
    expect(github.calls.slice(before).filter((c) => !c.path.includes('not-installed'))).toEqual([]);

    const commit = sha(1, 4);
    expect(await post(pullRequestEvent('reopened', 1, commit, 55))).toBe(202);
    await deploy(1, commit);
    await eventually(() => comments(1)[0]?.body.includes(`\`${commit.slice(0, 7)}\` | Ready`), 30_000);
    expect(comments(1)).toHaveLength(1);
  }, 60_000);
});
