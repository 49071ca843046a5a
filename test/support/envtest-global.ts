/**
 * Vitest global setup: one etcd + kube-apiserver for the whole run (with Switchyard's CRDs, and
 * Istio's when ISTIO_CRDS is set), shared by the test files through `inject('envtest')`. Each file
 * works in namespaces of its own. A test that restarts the API server starts its own instead.
 */
import type { TestProject } from 'vitest/node';
import { envtestGate, STATIC_USERS, startEnvtestWithCrds } from './envtest.js';

export interface SharedEnvtest {
  server: string;
  adminKubeconfig: string;
  kubeconfigs: Record<string, string>;
  istio: boolean;
}

declare module 'vitest' {
  export interface ProvidedContext {
    envtest: SharedEnvtest | null;
  }
}

export default async function setup(project: TestProject) {
  const gate = envtestGate({ istio: false });
  if (!gate) {
    project.provide('envtest', null);
    return;
  }
  const env = await startEnvtestWithCrds(gate);
  project.provide('envtest', {
    server: env.server,
    adminKubeconfig: env.adminKubeconfig,
    kubeconfigs: Object.fromEntries(STATIC_USERS.map((u) => [u, env.kubeconfigFor(u)])),
    istio: Boolean(gate.istio),
  });
  return () => env.stop();
}
