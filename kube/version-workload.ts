/**
 * Which Deployments run a version of a Service: those whose pod template carries the Service's
 * selector and the version label (a Deployment's own labels often differ from its pods'). A
 * preview's Deployment never counts. Shared by the preview reconciler (it clones the stable
 * version's) and the canary run (mesh mode waits for the canary's to have an available pod).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { PREVIEW_LABEL } from '../core/resources/labels.js';

type WithPodLabels = KubernetesObject & {
  spec?: { template?: { metadata?: { labels?: Record<string, string> } } };
};

export function versionDeployments<D extends WithPodLabels>(
  deployments: readonly D[],
  selector: Record<string, string>,
  versionLabel: string,
  version: string,
): D[] {
  const wanted = Object.entries({ ...selector, [versionLabel]: version });
  return deployments.filter((d) => {
    const labels = d.spec?.template?.metadata?.labels ?? {};
    return !d.metadata?.labels?.[PREVIEW_LABEL] && wanted.every(([k, v]) => labels[k] === v);
  });
}
