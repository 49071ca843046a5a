/**
 * A delivery whose handling failed is not lost: its id is forgotten, so GitHub's redelivery is
 * acted on (before, it was remembered for 24 h and the redelivery ignored). One that succeeded is
 * still acted on once.
 */
import { sign } from '@octokit/webhooks-methods';
import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { createLogger } from '../core/common/logger.js';
import { registerGithubWebhook, WEBHOOK_PATH } from '../pr-bot/github-webhook.js';
import { memoryDeliveryLog } from '../pr-bot/webhook-deliveries.js';
import { examplesOf } from './support/github-deliveries.js';

it('a failed delivery can be redelivered; a handled one is still handled once', async () => {
  const SECRET = 'a webhook secret';
  const handled: string[] = [];
  let failNext = true;
  const http = Fastify();
  const receiver = await registerGithubWebhook(http, {
    secret: SECRET,
    deliveries: memoryDeliveryLog(),
    logger: createLogger({ level: 'silent' }),
    handle: async (event) => {
      handled.push(event.id);
      if (failNext) {
        failNext = false;
        throw new Error('the API server said 500');
      }
    },
  });
  const url = await http.listen({ port: 0, host: '127.0.0.1' });
  try {
    const body = JSON.stringify(examplesOf('pull_request')[0]);
    const post = async (id: string) => {
      const res = await fetch(`${url}${WEBHOOK_PATH}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'pull_request',
          'x-github-delivery': id,
          'x-hub-signature-256': await sign(SECRET, body),
        },
        body,
      });
      await receiver.idle();
      return (await res.json()) as { duplicate?: boolean };
    };
    expect(await post('d-1')).toMatchObject({ accepted: true }); // fails while handled
    expect(await post('d-1')).toMatchObject({ accepted: true }); // the redelivery is handled
    expect(await post('d-1')).toMatchObject({ duplicate: true }); // now done: once only
    expect(handled).toEqual(['d-1', 'd-1']);
  } finally {
    await http.close();
  }
});
