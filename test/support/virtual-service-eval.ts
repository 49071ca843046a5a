/**
 * An independent reading of rendered VirtualServices, written from Istio's documentation and not
 * from Switchyard's plan: pick the VirtualService by host, take the first HTTPRoute whose match
 * list has a matching entry (all conditions of an entry must hold; no match list = every request;
 * a missing header never matches; regexes are RE2 and must match the whole value), and report
 * its weighted destinations by the x-switchyard-upstream header they set.
 */
import { RE2JS } from 're2js';

interface VsObject {
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    hosts: string[];
    http: {
      name: string;
      match?: Record<string, unknown>[];
      route: {
        weight?: number;
        headers?: { response?: { set?: Record<string, string>; add?: Record<string, string> } };
      }[];
      mirror?: { host: string; subset?: string };
      mirrorPercentage?: { value: number };
    }[];
  };
}

export interface EvalRequest {
  host: string;
  method?: string;
  headers?: Record<string, string>;
  claims?: Record<string, string>;
}

export interface EvalResult {
  virtualService?: string;
  route?: string;
  destinations: { upstream: string; weight: number; setCookie?: string }[];
  mirrored: boolean;
}

const compiled = new Map<string, RE2JS>();

function stringMatches(m: Record<string, string>, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (m.exact !== undefined) return value === m.exact;
  if (m.prefix !== undefined) return value.startsWith(m.prefix);
  if (m.regex !== undefined) {
    let re = compiled.get(m.regex);
    if (!re) {
      re = RE2JS.compile(m.regex);
      compiled.set(m.regex, re);
    }
    return re.matches(value);
  }
  throw new Error(`unsupported StringMatch ${JSON.stringify(m)}`);
}

function entryMatches(entry: Record<string, unknown>, req: EvalRequest): boolean {
  for (const [field, cond] of Object.entries(entry)) {
    if (field === 'authority') {
      if (!stringMatches(cond as Record<string, string>, req.host)) return false;
    } else if (field === 'method') {
      if (!stringMatches(cond as Record<string, string>, req.method ?? 'GET')) return false;
    } else if (field === 'headers') {
      for (const [name, hm] of Object.entries(cond as Record<string, Record<string, string>>)) {
        const claim = /^@request\.auth\.claims\.(.+)$/.exec(name);
        const value = claim ? req.claims?.[claim[1] as string] : req.headers?.[name];
        if (!stringMatches(hm, value)) return false;
      }
    } else {
      throw new Error(`the evaluator does not know match field ${field}`);
    }
  }
  return true;
}

export function evaluateVirtualServices(objects: VsObject[], req: EvalRequest): EvalResult {
  const host = req.host.replace(/:[0-9]+$/, '').toLowerCase();
  const vs = objects.filter((o) => o.kind === 'VirtualService').find((o) => o.spec.hosts.includes(host));
  if (!vs) return { destinations: [], mirrored: false };
  for (const route of vs.spec.http) {
    if (route.match && !route.match.some((e) => entryMatches(e, req))) continue;
    return {
      virtualService: `${vs.metadata.namespace}/${vs.metadata.name}`,
      route: route.name,
      destinations: route.route.map((d) => ({
        upstream: d.headers?.response?.set?.['x-switchyard-upstream'] ?? '?',
        weight: d.weight ?? 100,
        ...(d.headers?.response?.add?.['set-cookie']
          ? { setCookie: d.headers.response.add['set-cookie'] }
          : {}),
      })),
      mirrored: route.mirror !== undefined,
    };
  }
  return {
    virtualService: `${vs.metadata.namespace}/${vs.metadata.name}`,
    destinations: [],
    mirrored: false,
  };
}
