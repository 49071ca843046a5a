/** A progressive run of a policy driven by hand, one reconcile per call, as the controller's queue would. */
import type { KubernetesObject } from '@kubernetes/client-node';
import { backendFor, type ControllerMode } from '../../controllers/backends/index.js';
import { reconcileCanaryRun } from '../../controllers/canary-run.js';
import { createLogger } from '../../core/common/logger.js';
import type { Kube } from '../../kube/client.js';
import { type EventRecorder, kubeEventRecorder } from '../../kube/events.js';

/**
 * `run()` reconciles the run of `namespace/name` once; `status()` reads it back; `told` holds its
 * Events, which are also recorded on the API server as the controller records them.
 */
export function canaryRunByHand(kube: Kube, namespace: string, name: string, mode: ControllerMode) {
  const backend = backendFor(mode);
  const told: string[] = [];
  const recorder = kubeEventRecorder(kube, createLogger({ level: 'silent' }));
  const events: EventRecorder = {
    record: async (o, type, reason, message) => {
      told.push(`${reason}: ${message}`);
      await recorder.record(o, type, reason, message);
    },
  };
  const waiting = new Set<string>();
  const run = () =>
    reconcileCanaryRun(kube, namespace, name, {
      events,
      backend,
      series: backend.analysisSeries('istio'),
      waiting,
    });
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
