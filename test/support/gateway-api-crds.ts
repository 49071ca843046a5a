/**
 * The Gateway API CRDs (v1.6.3, standard and experimental channels), fetched once from the
 * sigs.k8s.io/gateway-api Go module by test/gateway-api/fetch.sh into .cache/gateway-api, or read
 * from GATEWAY_API_CRDS when it names such a folder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayApiChannel } from '../../core/gateway-api/http-route.js';
import { testBinaries } from './envtest.js';

const HTTPROUTES = 'gateway.networking.k8s.io_httproutes.yaml';

export const GATEWAY_API_SKIP_REASON =
  'skipping: set GATEWAY_API_CRDS to a folder with standard/ and experimental/ Gateway API CRDs, or install Go so test/gateway-api/fetch.sh can fetch them';

/** The folder, fetching it when needed; undefined when impossible (no Go). */
export function gatewayApiCrdFolder(): string | undefined {
  return testBinaries(
    'GATEWAY_API_CRDS',
    [`standard/${HTTPROUTES}`, `experimental/${HTTPROUTES}`],
    'test/gateway-api/fetch.sh',
  );
}

/** Every CRD file of one channel, as YAML texts. */
export function gatewayApiCrds(folder: string, channel: GatewayApiChannel): string[] {
  const dir = join(folder, channel);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'));
}
