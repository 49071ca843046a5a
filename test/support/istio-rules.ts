/**
 * Istio's documented rules that its CRD schemas leave to istiod's validation (istio/api,
 * pkg/config/validation): checked on rendered objects, each violation as a sentence.
 */
import { RE2JS } from 're2js';

type Obj = { kind: string; metadata: { name: string; namespace: string }; spec: Record<string, unknown> };
type StringMatch = { exact?: string; prefix?: string; regex?: string };

function checkStringMatch(where: string, m: StringMatch, out: string[]): void {
  const set = Object.keys(m).filter((k) => ['exact', 'prefix', 'regex'].includes(k));
  if (set.length !== 1) out.push(`${where}: a StringMatch needs exactly one of exact, prefix, regex`);
  if (m.prefix !== undefined && m.prefix === '') out.push(`${where}: empty prefix`);
  if (m.regex !== undefined) {
    try {
      RE2JS.compile(m.regex);
    } catch (e) {
      out.push(`${where}: regex is not RE2: ${(e as Error).message}`);
    }
  }
}

export function checkIstioRules(objects: Obj[]): string[] {
  const out: string[] = [];
  const hostOwners = new Map<string, string>();
  const subsets = new Map<string, Set<string>>();
  for (const o of objects.filter((x) => x.kind === 'DestinationRule')) {
    const spec = o.spec as { host: string; subsets: { name: string }[] };
    subsets.set(`${o.metadata.namespace}/${spec.host}`, new Set(spec.subsets.map((s) => s.name)));
  }
  for (const o of objects.filter((x) => x.kind === 'VirtualService')) {
    const id = `${o.metadata.namespace}/${o.metadata.name}`;
    const spec = o.spec as { hosts: string[]; http: Record<string, unknown>[] };
    for (const h of spec.hosts) {
      if (hostOwners.has(h))
        out.push(`${id}: host ${h} is also in ${hostOwners.get(h)} (one VirtualService per host)`);
      hostOwners.set(h, id);
    }
    const names = new Set<string>();
    spec.http.forEach((route, i) => {
      const where = `${id} http[${i}]`;
      const name = route.name as string;
      if (names.has(name)) out.push(`${where}: duplicate route name ${name}`);
      names.add(name);
      if (route.mirror !== undefined && route.mirrors !== undefined)
        out.push(`${where}: mirror and mirrors together`);
      const pct = (route.mirrorPercentage as { value: number } | undefined)?.value;
      if (pct !== undefined && (pct < 0 || pct > 100))
        out.push(`${where}: mirrorPercentage ${pct} outside 0..100`);
      for (const [j, m] of ((route.match as Record<string, unknown>[] | undefined) ?? []).entries()) {
        for (const [k, hm] of Object.entries((m.headers as Record<string, StringMatch>) ?? {})) {
          if (k !== k.toLowerCase()) out.push(`${where} match[${j}]: header name ${k} is not lowercase`);
          checkStringMatch(`${where} match[${j}].headers.${k}`, hm, out);
        }
        for (const f of ['authority', 'method', 'uri'])
          if (m[f]) checkStringMatch(`${where} match[${j}].${f}`, m[f] as StringMatch, out);
      }
      const dests = route.route as { weight?: number; destination: { host: string; subset?: string } }[];
      const total = dests.reduce((a, d) => a + (d.weight ?? 0), 0);
      if (total !== 100) out.push(`${where}: weights add up to ${total}, not 100`);
      for (const d of dests) {
        if (!Number.isInteger(d.weight) || (d.weight as number) < 0)
          out.push(`${where}: weight ${d.weight} is not a non-negative integer`);
        if (
          d.destination.subset &&
          !subsets.get(`${o.metadata.namespace}/${d.destination.host}`)?.has(d.destination.subset)
        ) {
          out.push(
            `${where}: subset ${d.destination.subset} of ${d.destination.host} is in no DestinationRule`,
          );
        }
      }
      const mirror = route.mirror as { host: string; subset?: string } | undefined;
      if (mirror?.subset && !subsets.get(`${o.metadata.namespace}/${mirror.host}`)?.has(mirror.subset)) {
        out.push(`${where}: mirror subset ${mirror.subset} is in no DestinationRule`);
      }
    });
  }
  for (const o of objects.filter((x) => x.kind === 'EnvoyFilter')) {
    const text = JSON.stringify(o.spec);
    for (const key of ['filter_enabled', 'filter_enforced']) {
      if (!text.includes(`"${key}"`))
        out.push(
          `${o.metadata.namespace}/${o.metadata.name}: local rate limit without ${key} limits nothing`,
        );
    }
  }
  return out;
}
