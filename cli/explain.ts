import { problem } from '../core/common/errors.js';
import { type Explanation, explainRequest, requestFrom } from '../core/compiler/explain.js';
import { loadAndCompile, reportProblems } from './input.js';
import { type CliIO, EXIT_OK } from './io.js';

export interface ExplainOptions {
  file: string[];
  host: string;
  method: string;
  header: string[];
  cookie: string[];
  claim: string[];
  output: string;
}

/** `k=v` (or `k: v`) pairs into a record; a repeated name is joined as proxies join repeated headers. */
function pairs(
  list: string[],
  flag: string,
  join: string,
  lower: boolean,
): { values: Record<string, string>; bad: string[] } {
  const values: Record<string, string> = {};
  const bad: string[] = [];
  for (const item of list) {
    const m = /^([^=:]+)(?:=|:\s*)(.*)$/.exec(item);
    if (!m) {
      bad.push(`${flag} ${JSON.stringify(item)}: expected name=value`);
      continue;
    }
    const name = (m[1] as string).trim();
    const k = lower ? name.toLowerCase() : name;
    values[k] = values[k] === undefined ? (m[2] as string) : `${values[k]}${join}${m[2]}`;
  }
  return { values, bad };
}

function describe(e: Explanation): string {
  if (!e.policy)
    return `host ${e.host}: no TrafficPolicy serves this host; the gateway and Envoy answer 404\n`;
  if (!e.route) return `host ${e.host}: policy ${e.policy}: no route matches; the answer is 404\n`;
  const lines = [
    `policy:       ${e.policy}`,
    `route:        ${e.route} (${e.kind}, rule ${e.position} of ${e.routes})`,
    ...e.destinations.map(
      (d, i) =>
        `${i === 0 ? 'destination: ' : '             '} ${d.upstream} ${d.weight}% -> ${d.host}${d.subset ? ` subset ${d.subset}` : ''} port ${d.port}${d.setCookie ? `\n                set-cookie: ${d.setCookie}` : ''}`,
    ),
  ];
  if (e.mirror) lines.push(`mirror:       ${e.mirror.upstream} ${e.mirror.percent}%`);
  for (const rl of e.rateLimits) {
    const key =
      rl.key.type === 'header'
        ? `header ${rl.key.header}`
        : rl.key.type === 'clientIp'
          ? 'client IP'
          : 'route';
    lines.push(
      `rate limit:   ${rl.name}: ${rl.limit} per ${rl.windowSeconds}s by ${key}${rl.enforce ? '' : ' (counted, not enforced)'}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function explainCommand(opts: ExplainOptions, io: CliIO): Promise<number> {
  const headers = pairs(opts.header, '--header', ', ', true);
  const cookies = pairs(opts.cookie, '--cookie', '; ', false);
  const claims = pairs(opts.claim, '--claim', ', ', false);
  const bad = [...headers.bad, ...cookies.bad, ...claims.bad].map((m) => problem('SY_BAD_REQUEST', m));
  const { plan, problems } = await loadAndCompile(opts.file);
  const failed = reportProblems([...bad, ...problems], io);
  if (failed !== undefined) return failed;
  const cookieHeader = Object.entries(cookies.values).map(([k, v]) => `${k}=${v}`);
  if (headers.values.cookie) cookieHeader.unshift(headers.values.cookie);
  if (cookieHeader.length > 0) headers.values.cookie = cookieHeader.join('; ');
  const e = explainRequest(
    plan,
    requestFrom({ host: opts.host, method: opts.method, headers: headers.values, claims: claims.values }),
  );
  io.stdout(opts.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : describe(e));
  return EXIT_OK;
}
