/** The one place that picks a backend (backend.ts says what one is). */
import { type Backend, CONTROLLER_MODES, type ControllerMode } from './backend.js';
import { gatewayApiBackend } from './gateway-api.js';
import { istioBackend } from './istio.js';
import { gatewayBackend } from './version-services.js';

export {
  type Backend,
  CONTROLLER_MODES,
  type ControllerMode,
  type DesiredContext,
  type SplitInForce,
} from './backend.js';

const BACKENDS: Record<ControllerMode, Backend> = {
  istio: istioBackend,
  gateway: gatewayBackend,
  'gateway-api': gatewayApiBackend,
};

export function backendFor(mode: ControllerMode): Backend {
  return BACKENDS[mode];
}

/** The backend that reconciled a policy, from its status; undefined before the first reconcile. */
export function backendOfStatus(status: { backend?: string } | undefined): Backend | undefined {
  const mode = CONTROLLER_MODES.find((m) => m === status?.backend);
  return mode ? backendFor(mode) : undefined;
}
