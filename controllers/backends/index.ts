/** The one place that picks a backend (backend.ts says what one is). */
import type { Backend, ControllerMode } from './backend.js';
import { istioBackend } from './istio.js';
import { gatewayBackend } from './version-services.js';

export type { Backend, ControllerMode, SplitInForce } from './backend.js';

export function backendFor(mode: ControllerMode): Backend {
  return mode === 'gateway' ? gatewayBackend : istioBackend;
}

/** The backend that reconciled a policy, from its status; undefined before the first reconcile. */
export function backendOfStatus(status: { backend?: string } | undefined): Backend | undefined {
  return status?.backend === 'istio' || status?.backend === 'gateway'
    ? backendFor(status.backend)
    : undefined;
}
