/**
 * The GitHub webhook (first step of the PR bot): real payloads from @octokit/webhooks-examples,
 * signed with the real HMAC, posted over HTTP; Previews written to a real API server. A wrong or
 * missing signature gets 401 and writes nothing, a malformed body 400, a redelivery is acted on
 * once, ping and push are acknowledged and ignored, closed deletes the pull request's Previews, and
 * a synchronize arriving after a newer one does not move the pull request back.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { sign } from '@octokit/webhooks-methods';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/common/logger.js';
import type { Kube } from '../kube/client.js';
import { registerGithubWebhook, WEBHOOK_PATH } from '../pr-bot/github-webhook.js';
import { handleGithubEvent } from '../pr-bot/handle-event.js';
import { memoryDeliveryLog } from '../pr-bot/webhook-deliveries.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { type Example, examplesOf } from './support/github-deliveries.js';

const shared = await sharedEnvtest({ istio: false });
const ns = 'github';
const SECRET = 'a webhook secret';
const pullRequest = (action: string) =>
  structuredClone(examplesOf('pull_request').find((e) => e.action === action)) as Example & {
    pull_request: { head: { sha: string }; updated_at: string; number: number; labels: unknown[] };
    repository: { full_name: string };
  };

describe.skipIf(!shared)('GitHub webhook → Previews', () => {
  let kube: Kube;
  let http: FastifyInstance;
  let receiver: { idle(): Promise<void> };
  let url: string;
  let delivery = 0;

  const post = async (
    name: string,
    payload: unknown,
    opts: { signature?: string | null; id?: string; body?: string } = {},
  ) => {
    const body = opts.body ?? JSON.stringify(payload);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-github-event': name,
      'x-github-delivery': opts.id ?? `delivery-${++delivery}`,
    };
    const signature = opts.signature === undefined ? await sign(SECRET, body) : opts.signature;
    if (signature) headers['x-hub-signature-256'] = signature;
    const res = await fetch(`${url}${WEBHOOK_PATH}`, { method: 'POST', headers, body });
    await receiver.idle();
    return res.status;
  };
  const previews = async () =>
    (
      await kube.list<KubernetesObject & { spec: { commit: string; pullRequest: number } }>(
        'switchyard.dev/v1alpha1',
        'Preview',
        ns,
      )
    )
      .map((p) => `${p.metadata?.name} ${p.spec.commit.slice(0, 7)}`)
      .sort();

  beforeAll(async () => {
    kube = adminKube(shared as Envtest);
    await createNamespace(kube, ns);
    await kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'hello', namespace: ns },
        spec: {
          service: 'hello',
          port: 80,
          stable: 'v1',
          previews: {
            repository: 'Codertocat/Hello-World',
            image: 'ghcr.io/codertocat/hello:{sha7}',
            maxPerPullRequest: 5,
          },
        },
      } as KubernetesObject,
      'test',
      true,
    );
    const logger = createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' });
    http = Fastify();
    receiver = await registerGithubWebhook(http, {
      secret: SECRET,
      deliveries: memoryDeliveryLog(),
      logger,
      handle: async (event) => {
        await handleGithubEvent(kube, event, { namespaces: [ns], logger });
      },
    });
    url = await http.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await http?.close();
  });

  it('refuses a missing or wrong signature with 401 and writes nothing', async () => {
    expect(await post('pull_request', pullRequest('opened'), { signature: null })).toBe(401);
    expect(await post('pull_request', pullRequest('opened'), { signature: `sha256=${'0'.repeat(64)}` })).toBe(
      401,
    );
    expect(
      await post('pull_request', pullRequest('opened'), {
        signature: await sign('another secret', JSON.stringify(pullRequest('opened'))),
      }),
    ).toBe(401);
    expect(await previews()).toEqual([]);
  });

  it('answers a signed but malformed body with 400', async () => {
    expect(await post('pull_request', null, { body: '{"action": "opened",' })).toBe(400);
  });

  it('acknowledges ping and push and does nothing', async () => {
    expect(await post('ping', examplesOf('ping')[0])).toBe(202);
    expect(await post('push', examplesOf('push')[0])).toBe(202);
    expect(await previews()).toEqual([]);
  });

  it('opened creates the Preview of the head commit; a redelivery does nothing twice', async () => {
    const opened = pullRequest('opened');
    expect(await post('pull_request', opened, { id: 'same-delivery' })).toBe(202);
    expect(await previews()).toEqual(['hello-pr-2-ec26c3e ec26c3e']);
    await kube.delete({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'Preview',
      namespace: ns,
      name: 'hello-pr-2-ec26c3e',
    });
    expect(await post('pull_request', opened, { id: 'same-delivery' })).toBe(202);
    expect(await previews()).toEqual([]); // not recreated: the delivery was already taken
    expect(await post('pull_request', opened)).toBe(202); // a new delivery of the same event is
    expect(await previews()).toEqual(['hello-pr-2-ec26c3e ec26c3e']);
  });

  it('synchronize adds the new commit; an older one arriving late moves nothing back', async () => {
    const newer = pullRequest('synchronize');
    newer.pull_request.head.sha = 'abcdef1234567890abcdef1234567890abcdef12';
    newer.pull_request.updated_at = '2019-05-15T16:00:00Z';
    const older = pullRequest('synchronize');
    older.pull_request.head.sha = '1234567aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    older.pull_request.updated_at = '2019-05-15T15:40:00Z';
    expect(await post('pull_request', newer)).toBe(202);
    expect(await post('pull_request', older)).toBe(202);
    expect(await previews()).toEqual(['hello-pr-2-abcdef1 abcdef1', 'hello-pr-2-ec26c3e ec26c3e']);
  });

  it("closed deletes the pull request's Previews", async () => {
    expect(await post('pull_request', pullRequest('closed'))).toBe(202);
    expect(await previews()).toEqual([]);
  });
});
