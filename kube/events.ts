/**
 * Kubernetes Events for each change the controller makes (what `kubectl describe` shows), as
 * client-go's EventRecorder. Recording is best effort: a failed Event is logged, never retried and
 * never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../core/common/logger.js';
import type { Reason } from '../core/resources/conditions.js';
import type { Kube } from './client.js';

export const COMPONENT = 'switchyard-controller';

export interface EventRecorder {
  record(
    involved: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: Reason,
    message: string,
  ): Promise<void>;
}

export function kubeEventRecorder(
  kube: Kube,
  logger: Logger,
  now: () => Date = () => new Date(),
): EventRecorder {
  return {
    async record(involved, type, reason, message) {
      const namespace = involved.metadata?.namespace ?? 'default';
      const time = now().toISOString();
      try {
        await kube.create({
          apiVersion: 'v1',
          kind: 'Event',
          metadata: {
            name: `${involved.metadata?.name}.${randomBytes(8).toString('hex')}`,
            namespace,
          },
          involvedObject: {
            apiVersion: involved.apiVersion,
            kind: involved.kind,
            name: involved.metadata?.name,
            namespace,
            uid: involved.metadata?.uid,
            resourceVersion: involved.metadata?.resourceVersion,
          },
          type,
          reason,
          // The API server caps an Event message at 1 KiB.
          message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          reportingInstance: COMPONENT,
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        } as KubernetesObject);
      } catch (e) {
        logger.warn({ reason, err: (e as Error)?.message ?? String(e) }, 'could not record an Event');
      }
    },
  };
}

/** For reconcilers run without a cluster's Event sink (one-shot CLI runs). */
export const NO_EVENTS: EventRecorder = { record: async () => undefined };
