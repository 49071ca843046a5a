/** The API versions Switchyard writes Istio's objects as. */
export { UPSTREAM_HEADER } from '../compiler/plan.js';

export const NETWORKING_V1 = 'networking.istio.io/v1';
export const NETWORKING_V1ALPHA3 = 'networking.istio.io/v1alpha3';
