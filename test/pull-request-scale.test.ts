/**
 * The PR bot at scale (issue 4, acceptance 2): 200 pull requests, each opened, pushed to three times
 * and closed, through the controller's webhook (real payloads, real signatures) on the envtest API
 * server, with the controller as its ServiceAccount and a GitHub stand-in. Preview Deployments are
 * reported available as they appear (the kubelet's part), so previews get routes too. Afterwards no
 * Preview, preview Deployment, preview Service or preview route is left, each pull request has
 * exactly one comment (saying nothing runs), and every GitHub deployment is inactive.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningController, startController } from '../cli/start-controller.js';
import { createLogger } from '../core/common/logger.js';
import { PREVIEW_LABEL } from '../core/resources/labels.js';
import type { Kube } from '../kube/client.js';
import { kubeConfigFrom } from '../kube/client.js';
import { githubClients } from '../pr-bot/github-client.js';
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
import { postDelivery, pullRequestEvent, sha } from './support/github-deliveries.js';
import { type GithubStandIn, startGithubStandIn } from './support/github-stand-in.js';

const shared = await sharedEnvtest({ istio: true });
const ns = 'prbot-scale';
const API = 'switchyard.dev/v1alpha1';
const SECRET = 'scale webhook secret';
const REPO = 'acme/shop';
const PULL_REQUESTS = 200;

type Vs = KubernetesObject & {
  spec: { http?: { name?: string; route: { destination: { subset?: string } }[] }[] };
};
type Dr = KubernetesObject & { spec: { subsets?: { name: string }[] } };

describe.skipIf(!shared)(
  `PR bot: ${PULL_REQUESTS} pull requests through open → synchronize ×3 → close`,
  () => {
    let env: Envtest;
    let admin: Kube;
    let github: GithubStandIn;
    let controller: RunningController;
    let kubelet: NodeJS.Timeout | undefined;

    beforeAll(async () => {
      env = shared as Envtest;
      admin = adminKube(env);
      await applyRbac(admin);
      await createNamespace(admin, ns);
      await stableWorkload(admin, ns, 'shop');
      await admin.apply(
        {
          apiVersion: API,
          kind: 'TrafficPolicy',
          metadata: { name: 'shop', namespace: ns },
          spec: {
            service: 'shop',
            port: 80,
            stable: 'v1',
            previews: {
              repository: REPO,
              image: 'ghcr.io/acme/shop:{sha7}',
              domain: 'preview.example.com',
              gateway: 'istio-system/previews',
            },
          },
        } as KubernetesObject,
        'test',
        true,
      );
      github = await startGithubStandIn();
      controller = await startController({
        kubeconfig: kubeConfigFrom(env.kubeconfigFor(CONTROLLER_USER)),
        logger: createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' }),
        namespaces: [ns],
        port: 0,
        host: '127.0.0.1',
        githubWebhookSecret: SECRET,
        // The stand-in is not GitHub: no need to space writes a second apart as GitHub asks.
        github: githubClients({
          token: 'scale',
          baseUrl: github.url,
          writeIntervalMs: 0,
          retryAfterBaseValue: 20,
        }),
      });
      // The kubelet's part: every preview Deployment becomes available soon after it appears.
      const marked = new Set<string>();
      const tick = async () => {
        const deployments = await admin.list('apps/v1', 'Deployment', ns, PREVIEW_LABEL).catch(() => []);
        for (const d of deployments) {
          const name = d.metadata?.name as string;
          if (marked.has(`${name}/${d.metadata?.uid}`)) continue;
          marked.add(`${name}/${d.metadata?.uid}`);
          await markAvailable(env, ns, name).catch(() => marked.delete(`${name}/${d.metadata?.uid}`));
        }
        kubelet = setTimeout(() => void tick(), 500);
      };
      void tick();
    }, 60_000);
    afterAll(async () => {
      clearTimeout(kubelet);
      await controller?.stop();
      await github?.close();
    });

    it('leaves nothing behind, with one comment per pull request', async () => {
      const rounds = [
        ['opened', 1],
        ['synchronize', 2],
        ['synchronize', 3],
        ['synchronize', 4],
        ['closed', 4],
      ] as const;
      for (const [round, [action, commit]] of rounds.entries()) {
        // Deliveries arrive as GitHub sends them: several at once.
        const numbers = Array.from({ length: PULL_REQUESTS }, (_, i) => i + 1);
        const sender = async () => {
          for (let n = numbers.shift(); n !== undefined; n = numbers.shift()) {
            const status = await postDelivery(
              controller.url,
              'pull_request',
              pullRequestEvent(action, n, sha(n, commit), round, REPO),
              { id: `scale-${n}-${round}`, secret: SECRET },
            );
            expect(status).toBe(202);
          }
        };
        await Promise.all(Array.from({ length: 8 }, sender));
      }

      await eventually(async () => (await admin.list(API, 'Preview', ns)).length === 0, 300_000);
      const previewObjects = async (apiVersion: string, kind: string) =>
        (await admin.list(apiVersion, kind, ns, PREVIEW_LABEL)).map((o) => o.metadata?.name);
      await eventually(async () => (await previewObjects('apps/v1', 'Deployment')).length === 0, 30_000);
      await eventually(async () => (await previewObjects('v1', 'Service')).length === 0, 30_000);
      expect((await admin.list('v1', 'Service', ns)).map((s) => s.metadata?.name)).toEqual(['shop']);
      // Routes: nothing for a pull request in any VirtualService or DestinationRule of the namespace.
      await eventually(async () => {
        const routes = (await admin.list<Vs>('networking.istio.io/v1', 'VirtualService', ns)).flatMap((v) =>
          (v.spec.http ?? []).flatMap((h) => [
            h.name ?? '',
            ...h.route.map((r) => r.destination.subset ?? ''),
          ]),
        );
        const subsets = (await admin.list<Dr>('networking.istio.io/v1', 'DestinationRule', ns)).flatMap((d) =>
          (d.spec.subsets ?? []).map((s) => s.name),
        );
        return [...routes, ...subsets].every((name) => !name.includes('pr-'));
      }, 30_000);

      // GitHub: each pull request has one comment, saying nothing runs; every deployment is retired.
      for (let n = 1; n <= PULL_REQUESTS; n++) {
        const comments = github.comments.get(`${REPO}#${n}`) ?? [];
        expect(comments, `pull request #${n}`).toHaveLength(1);
        expect(comments[0]?.body).toContain('No preview is running for this pull request.');
      }
      const deployments = github.deployments.get(REPO) ?? [];
      // A pull request whose previews came and went while GitHub was being told about others may
      // never have had a deployment (only the latest state is reported): nothing to retire then.
      expect(deployments.length).toBeGreaterThan(0);
      expect(deployments.filter((d) => d.statuses.at(-1)?.state !== 'inactive')).toEqual([]);
    }, 600_000);
  },
);
