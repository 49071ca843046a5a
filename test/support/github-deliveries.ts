/** GitHub deliveries for tests: real @octokit/webhooks-examples payloads, moved and signed. */
import examples from '@octokit/webhooks-examples';
import { sign } from '@octokit/webhooks-methods';

type PullRequestPayload = {
  action: string;
  pull_request: {
    number: number;
    head: { sha: string; repo: { full_name: string } | null };
    updated_at: string;
  };
  repository: { full_name: string };
};
export type Example = { action?: string; [k: string]: unknown };

/** The example payloads of one event (`pull_request`, `push`, `ping`, …). */
export const examplesOf = (name: string) =>
  ((examples as unknown as { name: string; examples: Example[] }[]).find((e) => e.name === name)?.examples ??
    []) as Example[];

const example = (action: string) =>
  structuredClone(
    examplesOf('pull_request').find((e) => e.action === action),
  ) as unknown as PullRequestPayload;

/**
 * The example payload for `action`, moved to another pull request, commit and time, and with
 * `repository` to another repository (the head branch with it: not a fork's pull request).
 */
export function pullRequestEvent(
  action: string,
  number: number,
  sha: string,
  minute: number,
  repository?: string,
) {
  const payload = example(action);
  if (repository) {
    payload.repository.full_name = repository;
    if (payload.pull_request.head.repo) payload.pull_request.head.repo.full_name = repository;
  }
  payload.pull_request.number = number;
  payload.pull_request.head.sha = sha;
  payload.pull_request.updated_at = new Date(Date.UTC(2026, 10, 23, 12, minute)).toISOString();
  return payload;
}

/** A distinct 40-hex commit for pull request `n`, commit number `commit`. */
export const sha = (n: number, commit: number) =>
  `${n.toString(16).padStart(4, '0')}${commit.toString(16).padStart(2, '0')}`.padEnd(40, 'c');

/** Posts a delivery to a controller's webhook, signed with `secret` (null: unsigned). */
export async function postDelivery(
  url: string,
  event: string,
  payload: unknown,
  opts: { id: string; secret: string | null },
): Promise<number> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': opts.id,
  };
  if (opts.secret !== null) headers['x-hub-signature-256'] = await sign(opts.secret, body);
  const res = await fetch(`${url}/webhooks/github`, { method: 'POST', headers, body });
  await res.arrayBuffer();
  return res.status;
}
