/**
 * A local HTTP server standing in for the GitHub REST API (issue comments and commit statuses, for
 * now): it keeps them per pull request and commit, records every call, and can answer 500 to the next N requests, as
 * GitHub does during an incident.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Call {
  method: string;
  path: string;
  body?: unknown;
  status: number;
}

export interface GithubStandIn {
  url: string;
  calls: Call[];
  comments: Map<string, { id: number; body: string }[]>;
  /** Commit statuses by `owner/repo@sha`, in the order posted. */
  statuses: Map<string, Record<string, unknown>[]>;
  failNext(n: number): void;
  close(): Promise<void>;
}

export async function startGithubStandIn(): Promise<GithubStandIn> {
  const calls: Call[] = [];
  const comments = new Map<string, { id: number; body: string }[]>();
  const statuses = new Map<string, Record<string, unknown>[]>();
  let failing = 0;
  let nextId = 1000;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as { body?: string }) : undefined;
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const answer = (status: number, data: unknown) => {
        calls.push({ method: req.method ?? '', path, ...(body ? { body } : {}), status });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(data));
      };
      if (failing > 0) {
        failing--;
        return answer(500, { message: 'Server Error (stand-in)' });
      }
      const list = path.match(/^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/);
      const edit = path.match(/^\/repos\/([^/]+)\/([^/]+)\/issues\/comments\/(\d+)$/);
      if (list) {
        const key = `${list[1]}/${list[2]}#${list[3]}`;
        const mine = comments.get(key) ?? [];
        if (req.method === 'GET') return answer(200, mine);
        if (req.method === 'POST') {
          const comment = { id: nextId++, body: body?.body ?? '' };
          comments.set(key, [...mine, comment]);
          return answer(201, comment);
        }
      }
      const status = path.match(/^\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]+)$/);
      if (status && req.method === 'POST') {
        const key = `${status[1]}/${status[2]}@${status[3]}`;
        statuses.set(key, [...(statuses.get(key) ?? []), body as Record<string, unknown>]);
        return answer(201, { id: nextId++, ...(body as object) });
      }
      if (edit && req.method === 'PATCH') {
        for (const list of comments.values()) {
          const c = list.find((x) => x.id === Number(edit[3]));
          if (c) {
            c.body = body?.body ?? '';
            return answer(200, c);
          }
        }
      }
      answer(404, { message: 'Not Found' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    comments,
    statuses,
    failNext(n) {
      failing = n;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
