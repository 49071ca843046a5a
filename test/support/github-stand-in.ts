/**
 * A local HTTP server standing in for the GitHub REST API, as much of it as the PR bot uses: issue
 * comments, commit statuses, deployments and their statuses, and GitHub App auth (installation
 * lookup and installation tokens, the App's JWT checked against its public key). It keeps what it
 * is sent per pull request and commit, records every call, and can answer 500 to the next N
 * requests, as GitHub does during an incident.
 */
import { createPublicKey, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Call {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  /** The Authorization header's scheme and the kind of credential (`token ghs_…`, `bearer <jwt>`). */
  auth?: string;
}

export interface Deployment {
  id: number;
  ref: string;
  sha: string;
  task: string;
  environment: string;
  payload: unknown;
  /** Deployment statuses in the order posted. */
  statuses: Record<string, unknown>[];
}

export interface GithubStandInOptions {
  /** Act as GitHub for this App: every call needs an installation token it issued. */
  app?: {
    id: string;
    publicKeyPem: string;
    installationId: number;
    /** Repositories (owner/name) the App is installed on; default: all. */
    repositories?: string[];
  };
  /** The address to listen on (default loopback; the cluster tests' pods reach the node's). */
  host?: string;
}

export interface GithubStandIn {
  url: string;
  calls: Call[];
  comments: Map<string, { id: number; body: string }[]>;
  /** Commit statuses by `owner/repo@sha`, in the order posted. */
  statuses: Map<string, Record<string, unknown>[]>;
  /** Deployments by `owner/repo`. */
  deployments: Map<string, Deployment[]>;
  failNext(n: number): void;
  /** While true, every request is answered 500 (an outage of unknown length). */
  down: boolean;
  close(): Promise<void>;
}

/** A GitHub App's key pair as GitHub hands out the private key (PKCS#1 PEM). */
export function githubAppKeys(): { publicKey: string; privateKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
}

/** Verifies an RS256 JWT signed by the App's private key; returns its claims or undefined. */
function verifyJwt(jwt: string, key: KeyObject): Record<string, unknown> | undefined {
  const [header, claims, signature] = jwt.split('.');
  if (!header || !claims || !signature) return undefined;
  const ok = createVerify('RSA-SHA256')
    .update(`${header}.${claims}`)
    .verify(key, Buffer.from(signature, 'base64url'));
  return ok
    ? (JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as Record<string, unknown>)
    : undefined;
}

export async function startGithubStandIn(options: GithubStandInOptions = {}): Promise<GithubStandIn> {
  const calls: Call[] = [];
  const comments = new Map<string, { id: number; body: string }[]>();
  const statuses = new Map<string, Record<string, unknown>[]>();
  const deployments = new Map<string, Deployment[]>();
  const tokens = new Set<string>();
  const appKey = options.app ? createPublicKey(options.app.publicKeyPem) : undefined;
  let failing = 0;
  let nextId = 1000;
  const state = { down: false };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      const url = new URL(req.url ?? '/', 'http://x');
      const path = url.pathname;
      const authorization = req.headers.authorization ?? '';
      const [scheme = '', credential = ''] = authorization.split(' ');
      const answer = (status: number, data: unknown) => {
        calls.push({
          method: req.method ?? '',
          path,
          ...(body ? { body } : {}),
          status,
          ...(authorization ? { auth: `${scheme} ${credential.slice(0, 4)}…` } : {}),
        });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(data));
      };
      if (state.down || failing > 0) {
        if (failing > 0) failing--;
        return answer(500, { message: 'Server Error (stand-in)' });
      }

      // GitHub App auth: the App's JWT for the App's own routes, installation tokens for the rest.
      if (options.app && appKey) {
        const app = options.app;
        const appRoute = path.startsWith('/app/') || /^\/repos\/[^/]+\/[^/]+\/installation$/.test(path);
        if (appRoute) {
          const claims = scheme.toLowerCase() === 'bearer' ? verifyJwt(credential, appKey) : undefined;
          const now = Date.now() / 1000;
          if (!claims || String(claims.iss) !== app.id || Number(claims.exp) < now)
            return answer(401, { message: 'A JSON web token could not be decoded' });
          if (req.method === 'GET' && path.endsWith('/installation')) {
            const repository = path.split('/').slice(2, 4).join('/');
            if (app.repositories && !app.repositories.includes(repository))
              return answer(404, { message: 'Not Found' });
            return answer(200, { id: app.installationId, app_id: Number(app.id) });
          }
          if (req.method === 'POST' && path === `/app/installations/${app.installationId}/access_tokens`) {
            const token = `ghs_standin${nextId++}`;
            tokens.add(token);
            return answer(201, {
              token,
              expires_at: new Date(Date.now() + 3600_000).toISOString(),
              permissions: { pull_requests: 'write', statuses: 'write', deployments: 'write' },
              repository_selection: 'all',
            });
          }
          return answer(404, { message: 'Not Found' });
        }
        if (scheme.toLowerCase() !== 'token' || !tokens.has(credential))
          return answer(401, { message: 'Bad credentials' });
      }

      const list = path.match(/^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/);
      if (list) {
        const key = `${list[1]}/${list[2]}#${list[3]}`;
        const mine = comments.get(key) ?? [];
        if (req.method === 'GET') return answer(200, mine);
        if (req.method === 'POST') {
          const comment = { id: nextId++, body: String(body?.body ?? '') };
          comments.set(key, [...mine, comment]);
          return answer(201, comment);
        }
      }
      const edit = path.match(/^\/repos\/([^/]+)\/([^/]+)\/issues\/comments\/(\d+)$/);
      if (edit && req.method === 'PATCH') {
        for (const list of comments.values()) {
          const c = list.find((x) => x.id === Number(edit[3]));
          if (c) {
            c.body = String(body?.body ?? '');
            return answer(200, c);
          }
        }
      }
      const status = path.match(/^\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]+)$/);
      if (status && req.method === 'POST') {
        const key = `${status[1]}/${status[2]}@${status[3]}`;
        statuses.set(key, [...(statuses.get(key) ?? []), body as Record<string, unknown>]);
        return answer(201, { id: nextId++, ...body });
      }
      const deploys = path.match(/^\/repos\/([^/]+)\/([^/]+)\/deployments$/);
      if (deploys) {
        const key = `${deploys[1]}/${deploys[2]}`;
        const mine = deployments.get(key) ?? [];
        if (req.method === 'GET') {
          const q = url.searchParams;
          const match = mine
            .filter(
              (d) =>
                (!q.get('sha') || d.sha === q.get('sha')) &&
                (!q.get('ref') || d.ref === q.get('ref')) &&
                (!q.get('task') || d.task === q.get('task')) &&
                (!q.get('environment') || d.environment === q.get('environment')),
            )
            .reverse(); // newest first, as GitHub lists them
          return answer(
            200,
            match.slice(0, Number(q.get('per_page') ?? 30)).map(({ statuses: _s, ...d }) => d),
          );
        }
        if (req.method === 'POST') {
          const ref = String(body?.ref ?? '');
          const d: Deployment = {
            id: nextId++,
            ref,
            sha: ref,
            task: String(body?.task ?? 'deploy'),
            environment: String(body?.environment ?? 'production'),
            payload: body?.payload ?? {},
            statuses: [],
          };
          deployments.set(key, [...mine, d]);
          const { statuses: _s, ...shown } = d;
          return answer(201, shown);
        }
      }
      const deployStatus = path.match(/^\/repos\/([^/]+)\/([^/]+)\/deployments\/(\d+)\/statuses$/);
      if (deployStatus) {
        const d = (deployments.get(`${deployStatus[1]}/${deployStatus[2]}`) ?? []).find(
          (x) => x.id === Number(deployStatus[3]),
        );
        if (!d) return answer(404, { message: 'Not Found' });
        if (req.method === 'GET')
          return answer(
            200,
            [...d.statuses].reverse().slice(0, Number(url.searchParams.get('per_page') ?? 30)),
          );
        if (req.method === 'POST') {
          const s = { id: nextId++, ...body };
          d.statuses.push(s);
          return answer(201, s);
        }
      }
      answer(404, { message: 'Not Found' });
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    calls,
    comments,
    statuses,
    deployments,
    failNext(n) {
      failing = n;
    },
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
