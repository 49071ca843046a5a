/**
 * `POST /webhooks/github` on the controller's HTTP port. The signature (`x-hub-signature-256`, HMAC
 * of the raw body) is checked by @octokit/webhooks before anything else: a missing or wrong one gets
 * 401 and nothing is done. A malformed body gets 400. An accepted delivery gets 202 at once and is
 * handled from a queue, so GitHub's 10-second timeout never depends on the cluster: one pull
 * request's deliveries in arrival order, different pull requests side by side. A delivery id
 * seen before (GitHub redelivers) is acknowledged and not acted on again, unless its handling
 * failed: then its id is forgotten and a redelivery is handled.
 */
import { Webhooks } from '@octokit/webhooks';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/common/logger.js';
import type { DeliveryLog } from './webhook-deliveries.js';

export interface GithubWebhookOptions {
  secret: string;
  deliveries: DeliveryLog;
  logger: Logger;
  /** Handles one accepted delivery (queued: the HTTP answer does not wait for it). */
  handle: (event: { id: string; name: string; payload: unknown }) => Promise<void>;
  /** Deliveries handled at once (those of one pull request always one after another); default 8. */
  concurrency?: number;
}

/** Deliveries of one pull request are handled in order; those of different ones side by side. */
function orderKey(name: string, payload: unknown): string {
  const p = payload as { repository?: { full_name?: string }; pull_request?: { number?: number } };
  return name === 'pull_request' ? `${p.repository?.full_name}#${p.pull_request?.number}` : name;
}

/** Runs jobs in order per key, at most `limit` at once over all keys. */
function keyedSerialQueue(limit: number) {
  const chains = new Map<string, Promise<void>>();
  const waiting: (() => void)[] = [];
  let running = 0;
  const slot = () => {
    if (running >= limit) return new Promise<void>((r) => waiting.push(r));
    running++;
    return Promise.resolve();
  };
  // A freed slot goes straight to the next waiter.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return {
    add(key: string, job: () => Promise<void>) {
      const next = (chains.get(key) ?? Promise.resolve()).then(async () => {
        await slot();
        try {
          await job();
        } finally {
          release();
        }
      });
      chains.set(key, next);
      void next.then(() => {
        if (chains.get(key) === next) chains.delete(key);
      });
    },
    idle: async () => {
      while (chains.size > 0) await Promise.all(chains.values());
    },
  };
}

export const WEBHOOK_PATH = '/webhooks/github';

export async function registerGithubWebhook(
  http: FastifyInstance,
  opts: GithubWebhookOptions,
): Promise<{
  idle(): Promise<void>;
}> {
  const webhooks = new Webhooks({ secret: opts.secret });
  const queue = keyedSerialQueue(opts.concurrency ?? 8);
  await http.register(async (scope) => {
    // The signature covers the exact bytes GitHub sent: keep the body as a string.
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) =>
      done(null, body),
    );
    scope.post(WEBHOOK_PATH, async (req, reply) => {
      const header = (name: string) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const body = typeof req.body === 'string' ? req.body : '';
      const signature = header('x-hub-signature-256');
      if (!signature || !(await webhooks.verify(body, signature).catch(() => false)))
        return reply
          .code(401)
          .send({ error: 'missing or wrong x-hub-signature-256 for this webhook secret' });
      const id = header('x-github-delivery');
      const name = header('x-github-event');
      if (!id || !name)
        return reply.code(400).send({ error: 'x-github-delivery and x-github-event are required' });
      let payload: unknown;
      try {
        payload = JSON.parse(body);
      } catch {
        return reply.code(400).send({ error: 'the body is not JSON' });
      }
      if (!payload || typeof payload !== 'object')
        return reply.code(400).send({ error: 'the body is not a JSON object' });
      if (!(await opts.deliveries.firstTime(id)))
        return reply.code(202).send({ delivery: id, duplicate: true });
      queue.add(orderKey(name, payload), () =>
        opts.handle({ id, name, payload }).catch(async (e) => {
          // Not done: forget the id, so GitHub's "Redeliver" (or its own retry) is acted on.
          await opts.deliveries.forget(id).catch(() => undefined);
          opts.logger.error(
            { delivery: id, event: name, err: (e as Error)?.message ?? String(e) },
            'webhook delivery failed; a redelivery of it will be handled',
          );
        }),
      );
      return reply.code(202).send({ delivery: id, accepted: true });
    });
  });
  return { idle: queue.idle };
}
