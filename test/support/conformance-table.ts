/**
 * The conformance table over deploy/examples: requests and the destinations a user expects.
 * The foundation's test checks `explain` and the rendered VirtualServices against it; the gateway's
 * test runs the same rows against the live gateway.
 */
import { canaryRunId } from '../../core/compiler/names.js';

const run = canaryRunId('shop', 'catalog', 'v2');
const FQDN = (s: string) => `${s}.shop.svc.cluster.local`;

export interface ConformanceRow {
  name: string;
  host: string;
  method?: string;
  headers?: Record<string, string>;
  /** upstream → weight the user expects; {} means no route (404). */
  expect: Record<string, number>;
  mirrored?: boolean;
  /**
   * Sticky rows: true when every answer sets the canary cookie stamped with the side it went to at
   * the current weight (a new client, a move, a re-stamp); false when it sets none (a client kept).
   */
  stamps?: boolean;
}

/** The sticky canary cookie an answer from `upstream` must set on a row that stamps (catalog at 30 %). */
export function stampedCookie(upstream: string): string {
  return `switchyard-canary=${run}.${upstream === 'catalog/v2' ? 'c' : 's'}30;`;
}

/** Checks the Set-Cookie of an answer against the row; a row without `stamps` is not checked. */
export function cookieProblem(
  row: ConformanceRow,
  upstream: string,
  setCookie: string | string[] | undefined,
): string | undefined {
  if (row.stamps === undefined) return undefined;
  const sticky = [setCookie ?? []].flat().filter((c) => c.startsWith('switchyard-canary='));
  if (!row.stamps) return sticky.length === 0 ? undefined : `set ${sticky.join(' | ')} on a client it keeps`;
  return sticky.length === 1 && sticky[0]?.startsWith(stampedCookie(upstream))
    ? undefined
    : `expected one cookie starting ${stampedCookie(upstream)}, got ${JSON.stringify(sticky)}`;
}

export const CONFORMANCE_TABLE: ConformanceRow[] = [
  { name: 'no header goes to stable', host: FQDN('cart'), expect: { 'cart/v1': 100 } },
  {
    name: 'exact header intercept',
    host: FQDN('cart'),
    headers: { 'x-debug-user': 'alice' },
    expect: { 'cart/v3': 100 },
  },
  {
    name: 'header values are case-sensitive',
    host: FQDN('cart'),
    headers: { 'x-debug-user': 'Alice' },
    expect: { 'cart/v1': 100 },
  },
  {
    name: 'prefix intercept',
    host: FQDN('cart'),
    headers: { 'x-debug-user': 'qa-bob' },
    expect: { 'cart/v2': 100 },
  },
  {
    name: 'prefix equal to the whole value',
    host: FQDN('cart'),
    headers: { 'x-debug-user': 'qa-' },
    expect: { 'cart/v2': 100 },
  },
  {
    name: 'regex intercept matches the whole value',
    host: FQDN('cart'),
    headers: { 'x-client-build': '4.2.0-beta.1' },
    expect: { 'cart/v2': 100 },
  },
  {
    name: 'regex does not match a longer value',
    host: FQDN('cart'),
    headers: { 'x-client-build': '4.2.0-beta.1-x' },
    expect: { 'cart/v1': 100 },
  },
  {
    name: 'regex does not match with a prefix',
    host: FQDN('cart'),
    headers: { 'x-client-build': 'v4.2.0-beta.1' },
    expect: { 'cart/v1': 100 },
  },
  {
    name: 'first intercept wins',
    host: FQDN('cart'),
    headers: { 'x-debug-user': 'alice', 'x-client-build': '1.0.0-beta.1' },
    expect: { 'cart/v3': 100 },
  },
  {
    name: 'baggage member',
    host: FQDN('search'),
    headers: { baggage: 'tenant=acme-test' },
    expect: { 'search/v2': 100 },
  },
  {
    name: 'baggage with blanks and properties',
    host: FQDN('search'),
    headers: { baggage: 'other=1, tenant = acme-test ;ttl=3' },
    expect: { 'search/v2': 100 },
  },
  {
    name: 'baggage value must be whole',
    host: FQDN('search'),
    headers: { baggage: 'tenant=acme-test2' },
    expect: { 'search/v1': 100 },
  },
  {
    name: 'baggage keys are case-sensitive',
    host: FQDN('search'),
    headers: { baggage: 'Tenant=acme-test' },
    expect: { 'search/v1': 100 },
  },
  {
    name: 'baggage is not percent-decoded',
    host: FQDN('search'),
    headers: { baggage: 'tenant=acme%2Dtest' },
    expect: { 'search/v1': 100 },
  },
  {
    name: 'a baggage property is not a member',
    host: FQDN('search'),
    headers: { baggage: 'x=1;tenant=acme-test' },
    expect: { 'search/v1': 100 },
  },
  {
    name: 'baggage prefix',
    host: FQDN('search'),
    headers: { baggage: 'a=b,synthetic=k6-run1' },
    expect: { 'search/v2': 100 },
  },
  { name: 'weighted canary', host: 'payments.example.com', expect: { 'payments/v1': 80, 'payments/v2': 20 } },
  {
    name: 'host with a port',
    host: 'payments.example.com:443',
    expect: { 'payments/v1': 80, 'payments/v2': 20 },
  },
  {
    name: 'sticky: a new client draws at W',
    host: FQDN('catalog'),
    expect: { 'catalog/v1': 70, 'catalog/v2': 30 },
    stamps: true,
  },
  {
    name: 'sticky: canary at W stays',
    host: FQDN('catalog'),
    headers: { cookie: `a=1; switchyard-canary=${run}.c30` },
    expect: { 'catalog/v2': 100 },
    stamps: false,
  },
  {
    name: 'sticky: stable at W stays',
    host: FQDN('catalog'),
    headers: { cookie: `switchyard-canary=${run}.s30; b=2` },
    expect: { 'catalog/v1': 100 },
    stamps: false,
  },
  {
    name: 'sticky: canary at 50 draws down',
    host: FQDN('catalog'),
    headers: { cookie: `switchyard-canary=${run}.c50` },
    expect: { 'catalog/v1': 40, 'catalog/v2': 60 },
    stamps: true,
  },
  {
    name: 'sticky: stable at 10 draws up',
    host: FQDN('catalog'),
    headers: { cookie: `switchyard-canary=${run}.s10` },
    expect: { 'catalog/v1': 78, 'catalog/v2': 22 },
    stamps: true,
  },
  {
    name: "sticky: another run's cookie is new",
    host: FQDN('catalog'),
    headers: { cookie: 'switchyard-canary=00000000.c30' },
    expect: { 'catalog/v1': 70, 'catalog/v2': 30 },
    stamps: true,
  },
  {
    name: 'mirror copies GET',
    host: FQDN('recommendations'),
    expect: { 'recommendations/v1': 100 },
    mirrored: true,
  },
  {
    name: 'mirror skips POST',
    host: FQDN('recommendations'),
    method: 'POST',
    expect: { 'recommendations/v1': 100 },
    mirrored: false,
  },
  { name: 'rate-limited policy routes as usual', host: FQDN('api'), expect: { 'api/v1': 90, 'api/v2': 10 } },
  {
    name: 'external host default',
    host: 'shop.example.com',
    expect: { 'checkout/v1': 80, 'checkout/v2': 20 },
  },
  {
    name: 'preview header: newest commit',
    host: 'shop.example.com',
    headers: { 'x-switchyard-preview': 'pr-42' },
    expect: { 'checkout/pr-42-7f3a2c1': 100 },
  },
  {
    name: 'preview header: pinned commit',
    host: 'shop.example.com',
    headers: { 'x-switchyard-preview': 'pr-42-1b2c3d4' },
    expect: { 'checkout/pr-42-1b2c3d4': 100 },
  },
  {
    name: 'preview header: newest pinned too',
    host: 'shop.example.com',
    headers: { 'x-switchyard-preview': 'pr-42-7f3a2c1' },
    expect: { 'checkout/pr-42-7f3a2c1': 100 },
  },
  {
    name: 'preview header is lowercase only',
    host: 'shop.example.com',
    headers: { 'x-switchyard-preview': 'PR-42' },
    expect: { 'checkout/v1': 80, 'checkout/v2': 20 },
  },
  {
    name: 'a failed preview gets no route',
    host: 'shop.example.com',
    headers: { 'x-switchyard-preview': 'pr-9' },
    expect: { 'checkout/v1': 80, 'checkout/v2': 20 },
  },
  {
    name: 'preview through baggage',
    host: 'shop.example.com',
    headers: { baggage: 'switchyard-preview=pr-7' },
    expect: { 'checkout/pr-7-0a1b2c3': 100 },
  },
  {
    name: 'intercept to a pinned preview',
    host: 'shop.example.com',
    headers: { 'x-demo': 'pinned' },
    expect: { 'checkout/pr-42-1b2c3d4': 100 },
  },
  {
    name: 'preview routes come before intercepts',
    host: 'shop.example.com',
    headers: { 'x-demo': 'pinned', 'x-switchyard-preview': 'pr-7' },
    expect: { 'checkout/pr-7-0a1b2c3': 100 },
  },
  {
    name: 'preview URL: newest commit',
    host: 'pr-42--checkout.preview.example.com',
    expect: { 'checkout/pr-42-7f3a2c1': 100 },
  },
  {
    name: 'preview URL: pinned commit',
    host: 'pr-42-1b2c3d4--checkout.preview.example.com',
    expect: { 'checkout/pr-42-1b2c3d4': 100 },
  },
  {
    name: 'preview URL with a port',
    host: 'pr-7--checkout.preview.example.com:443',
    expect: { 'checkout/pr-7-0a1b2c3': 100 },
  },
  {
    name: 'preview URL ignores the preview header',
    host: 'pr-7--checkout.preview.example.com',
    headers: { 'x-switchyard-preview': 'pr-42' },
    expect: { 'checkout/pr-7-0a1b2c3': 100 },
  },
  { name: 'a host no policy serves', host: 'unknown.example.com', expect: {} },
  { name: 'a failed preview has no URL', host: 'pr-9--checkout.preview.example.com', expect: {} },
];
