/** The gateway benches' plan: what a busy policy asks of the gateway on every request. */

export const BENCH_HOST = 'bench.local';

/**
 * A 20 % canary, three intercepts (header, regex, baggage → preview), a per-client-IP rate limit
 * (counted, never hit) and, when asked, a GET mirror; every upstream is `upstream` unless a shadow is given.
 */
export function benchPlan(
  upstream: string,
  mirror: { to: string; percent: number } | undefined,
  shadowUrl?: string,
): string {
  return `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: bench, namespace: bench}
spec:
  service: shop
  port: 80
  hosts: [${BENCH_HOST}]
  stable: v1
  canary: {version: v2, weight: 20}
  intercepts:
    - {name: alice, match: {header: x-debug-user, exact: alice}, to: {version: v3}}
    - {name: beta, match: {header: x-client-build, regex: '[0-9]+\\.[0-9]+-beta'}, to: {version: v3}}
    - {name: tenant, match: {baggage: tenant, exact: acme}, to: {preview: pr-42}}
${mirror ? `  mirror: {to: {version: ${mirror.to}}, percent: ${mirror.percent}, methods: [GET]}\n` : ''}  rateLimits:
    - {name: per-ip, key: {clientIp: {}}, limit: 1000000000, window: 1m}
  previews: {repository: acme/shop}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: bench-pr-42-7f3a2c1, namespace: bench}
spec: {policy: bench, repository: acme/shop, pullRequest: 42, commit: 7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a}
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayConfig
metadata: {name: bench}
spec:
  upstreams:
    shop/v1: ${upstream}
    shop/v2: ${upstream}
    shop/v3: ${upstream}
    shop/pr-42-7f3a2c1: ${upstream}
    shop/shadow: ${shadowUrl ?? upstream}
`;
}
