/**
 * Configuration files a careless or hostile author writes, each with what its problem line must
 * say: used by the validate, reload and reload-fuzz tests (test/hostile-config.test.ts,
 * test/gateway-reload-fuzz.test.ts).
 */
import { gatewayConfig, startTestGateway, type TestGateway } from './gateway.js';
import { agent } from './http.js';
import { startUpstream, type TestUpstream } from './upstreams.js';

export const POLICY = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, hosts: [web.test], stable: v1}
`;

/** Each hostile file, and what its problem line must say. */
export const HOSTILE: [name: string, text: string, says: RegExp][] = [
  ['an alias with no anchor', `${POLICY}---\nkind: *typo\n`, /YAML does not parse: .*typo/],
  [
    'an anchor that refers to itself',
    `${POLICY}---\na: &x [1, *x]\n`,
    /YAML does not parse: an alias is inside the node it names \(a cycle\)/,
  ],
  [
    'too many aliases (billion laughs)',
    `${POLICY}---\na: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
    /YAML does not parse: .*alias/i,
  ],
  [
    'an upstream URL that does not parse',
    `${POLICY}${gatewayConfig({ 'web/v1': '"http://[::1"' })}`,
    /spec\.upstreams\["web\/v1"\]: expected an http:\/\/ or https:\/\/ URL .*does not parse/,
  ],
  [
    'an upstream key that is not <service>/<version>, with no URL (found by the property test)',
    `${POLICY}${gatewayConfig({ 'Web/V1': 'null' })}`,
    /spec\.upstreams\["Web\/V1"\]: unknown key \(expected a key matching/,
  ],
  [
    'a kind that names an Object method',
    `${POLICY}---\napiVersion: switchyard.dev/v1alpha1\nkind: constructor\nspec: {}\n`,
    /expected apiVersion .* and kind TrafficPolicy, Preview or GatewayConfig .*\[SY_UNKNOWN_KIND\]/,
  ],
  [
    'a key repeated in a mapping',
    `${POLICY}---\na: 1\nb: 2\na: 3\n`,
    /YAML does not parse: duplicated mapping key \(line 8, column 1\)/,
  ],
  [
    'a 2 MB intercept regex (a file over 4 MiB is refused before it is read)',
    `${POLICY.replace('stable: v1}', `stable: v1, intercepts: [{name: a, match: {header: x-a, regex: "${'a'.repeat(2_000_000)}"}, to: {version: v2}}]}`)}`,
    /spec\.intercepts\[0\]\.match\.regex: expected an RE2 regular expression of at most 4096 characters \(got 2000000\)/,
  ],
  [
    "a regex whose RE2 program is over Istio's 32,768",
    `${POLICY.replace('stable: v1}', `stable: v1, intercepts: [{name: a, match: {header: x-a, regex: "${'[a-z]{1000}'.repeat(33)}"}, to: {version: v2}}]}`)}`,
    /regex: expected an RE2 regular expression: its RE2 program has \d+ instructions, more than the 32768/,
  ],
  [
    "a rate limit above Envoy's 32-bit token bucket",
    `${POLICY.replace('stable: v1}', 'stable: v1, rateLimits: [{name: a, key: {clientIp: {}}, limit: 4294967296, window: 1s}]}')}`,
    /spec\.rateLimits\[0\]\.limit: expected a positive integer below 2\^32: must be at most 4294967295/,
  ],
  ['nesting deeper than the stack', `${POLICY}---\n${'['.repeat(20_000)}\n`, /YAML does not parse/],
];

/** A gateway serving POLICY (web.test) from one upstream, web/v1; `good()` is its configuration. */
export async function webGateway(): Promise<{
  gw: TestGateway;
  web: TestUpstream;
  good: () => string;
  close(): Promise<void>;
}> {
  const web = await startUpstream('web/v1');
  const good = () => `${POLICY}${gatewayConfig({ 'web/v1': web.url })}`;
  const gw = await startTestGateway(good());
  return {
    gw,
    web,
    good,
    async close() {
      await gw.close();
      await web.close();
      await agent.close();
    },
  };
}
