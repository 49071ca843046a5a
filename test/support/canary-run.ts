/** A progressive run of a policy driven by hand, one reconcile per call, as the controller's queue would. */
import type { KubernetesObject } from '@kubernetes/client-node';
import { reconcileCanaryRun } from '../../controllers/canary-run.js';
import type { Kube } from '../../kube/client.js';
import type { MetricsBackend } from '../../src/delivery/queries.js';

/** `run()` reconciles the run of `namespace/name` once; `status()` reads it back; `told` holds its Events. */
export function canaryRunByHand(kube: Kube, namespace: string, name: string, backend: MetricsBackend) {
  const told: string[] = [];
  const events = {
    record: async (_o: KubernetesObject, _t: string, reason: string, message: string) => {
      told.push(`${reason}: ${message}`);
    },
  };
  const waiting = new Set<string>();
  const run = () => reconcileCanaryRun(kube, namespace, name, { events, backend, waiting });
  const status = async () =>
    (
      await kube.get<KubernetesObject & { status?: { canary?: { weight: number } } }>({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        namespace,
        name,
      })
    )?.status?.canary;
  return { run, status, told };
}
