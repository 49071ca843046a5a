/**
 * Outbound GitHub credentials: a GitHub App (id + private key) finds its installation on the
 * repository with its JWT and acts with an installation token, against a stand-in that verifies the
 * JWT's signature with the App's public key; a token works as it is; the environment is read with
 * a clear error for half an App.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubAuthFromEnv, githubClients } from '../pr-bot/github-client.js';
import { upsertPreviewComment } from '../pr-bot/pr-comment.js';
import { type GithubStandIn, githubAppKeys, startGithubStandIn } from './support/github-stand-in.js';

const keys = githubAppKeys();

describe('GitHub App auth', () => {
  let github: GithubStandIn;
  beforeAll(async () => {
    github = await startGithubStandIn({ app: { id: '99', publicKeyPem: keys.publicKey, installationId: 5 } });
  });
  afterAll(async () => {
    await github?.close();
  });

  it('acts as the installation on the repository: JWT to find it and get a token, the token for the rest', async () => {
    const clients = githubClients({ appId: '99', privateKey: keys.privateKey, baseUrl: github.url });
    const client = await clients.forRepository('acme/shop');
    await upsertPreviewComment(client, { owner: 'acme', repo: 'shop', pullRequest: 3 }, 'hello');
    await upsertPreviewComment(client, { owner: 'acme', repo: 'shop', pullRequest: 4 }, 'hello');
    expect(github.calls.map((c) => `${c.method} ${c.path} ${c.status} ${c.auth}`)).toEqual([
      'GET /repos/acme/shop/installation 200 bearer eyJh…',
      'POST /app/installations/5/access_tokens 201 bearer eyJh…',
      'GET /repos/acme/shop/issues/3/comments 200 token ghs_…',
      'POST /repos/acme/shop/issues/3/comments 201 token ghs_…',
      // The installation token is cached until it expires.
      'GET /repos/acme/shop/issues/4/comments 200 token ghs_…',
      'POST /repos/acme/shop/issues/4/comments 201 token ghs_…',
    ]);
  });

  it('is refused by GitHub when the key is not the App’s', async () => {
    const other = githubAppKeys();
    const clients = githubClients({ appId: '99', privateKey: other.privateKey, baseUrl: github.url });
    await expect(clients.forRepository('acme/other')).rejects.toMatchObject({ status: 401 });
  });
});

describe('GitHub credentials from the environment', () => {
  it('reads an App, a token, or nothing, and names what is missing', () => {
    expect(
      githubAuthFromEnv({
        SWITCHYARD_GITHUB_APP_ID: '12',
        SWITCHYARD_GITHUB_APP_PRIVATE_KEY: 'pem',
        SWITCHYARD_GITHUB_API_URL: 'https://github.example.com/api/v3',
      }),
    ).toEqual({ appId: '12', privateKey: 'pem', baseUrl: 'https://github.example.com/api/v3' });
    expect(githubAuthFromEnv({ SWITCHYARD_GITHUB_TOKEN: 't' })).toEqual({ token: 't', baseUrl: undefined });
    expect(githubAuthFromEnv({})).toBeUndefined();
    expect(githubAuthFromEnv({ SWITCHYARD_GITHUB_APP_ID: '12' })).toMatchObject({
      code: 'SY_BAD_REQUEST',
      message: expect.stringContaining('SWITCHYARD_GITHUB_APP_PRIVATE_KEY'),
    });
    expect(
      githubAuthFromEnv({
        SWITCHYARD_GITHUB_APP_ID: '12',
        SWITCHYARD_GITHUB_APP_PRIVATE_KEY: 'pem',
        SWITCHYARD_GITHUB_APP_INSTALLATION_ID: 'abc',
      }),
    ).toMatchObject({ message: expect.stringContaining("expected the installation's number") });
  });
});
