/**
 * Preview → a running copy of the service at one commit: a Deployment cloned from the stable one
 * (found through the Service's selector and the version label) with the preview's image, and a
 * Service of its own, both named like the Preview and owned by it. The Deployment's readiness
 * becomes the Preview's phase; a Ready preview then gets routes from the TrafficPolicy reconciler.
 * Pods keep the Service's labels (so telemetry and `workloadLabels` still match) and get the
 * version label `pr-<N>-<sha7>` and `switchyard.dev/role: preview`; traffic reaches them only
 * through routes, which always name a subset or the preview's own Service.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { latestRef, pinnedRef, previewHost } from '../src/compiler/names.js';
import { PREVIEW_ROLE_LABEL } from '../src/istio/envoy-filter.js';
import {
  API_VERSION,
  DEFAULTS,
  GROUP,
  type Preview,
  type TrafficPolicy,
  VERSION,
} from '../src/resources/schema.js';
import { type ConditionValue, mergeConditions, type Reason } from './conditions.js';
import type { Kube } from './kube.js';
import { FIELD_MANAGER } from './traffic-policy.js';

export const PREVIEW_LABEL = 'switchyard.dev/preview';

type Deployment = KubernetesObject & {
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        containers: { name: string; image?: string; env?: { name: string; value?: string }[] }[];
      } & Record<string, unknown>;
    };
  };
  status?: { availableReplicas?: number; conditions?: { type: string; status: string; message?: string }[] };
};
type Service = KubernetesObject & {
  spec: {
    selector?: Record<string, string>;
    ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
  };
};
type LivePreview = Preview & KubernetesObject;

export type PreviewPhase = 'Pending' | 'Deploying' | 'Ready' | 'Failed';

export interface PreviewResult {
  phase: PreviewPhase;
  reason: Reason;
  writes: string[];
}

function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The image: the Preview's own, else the policy's template with {sha} (full) or {sha7}. */
export function previewImage(preview: Preview, policy: TrafficPolicy): string | undefined {
  if (preview.spec.image) return preview.spec.image;
  const template = policy.spec.previews?.image;
  return template
    ?.replaceAll('{sha7}', preview.spec.commit.slice(0, 7))
    .replaceAll('{sha}', preview.spec.commit);
}

export async function reconcilePreview(
  kube: Kube,
  namespace: string,
  name: string,
  now: () => Date = () => new Date(),
): Promise<PreviewResult | undefined> {
  const preview = await kube.get<LivePreview>({ apiVersion: API_VERSION, kind: 'Preview', namespace, name });
  if (!preview) return undefined; // gone: owner references remove its Deployment and Service
  const writes: string[] = [];
  const finish = async (
    phase: PreviewPhase,
    reason: Reason,
    message: string,
    extra: Record<string, string> = {},
  ) => {
    await writePreviewStatus(kube, preview, phase, reason, message, extra, now());
    return { phase, reason, writes };
  };

  const policy = await kube.get<TrafficPolicy & KubernetesObject>({
    apiVersion: API_VERSION,
    kind: 'TrafficPolicy',
    namespace,
    name: preview.spec.policy,
  });
  if (!policy)
    return finish(
      'Failed',
      'PolicyNotFound',
      `no TrafficPolicy ${namespace}/${preview.spec.policy}: create it, or fix spec.policy`,
    );
  const image = previewImage(preview, policy);
  if (!image)
    return finish(
      'Failed',
      'NoImage',
      `neither spec.image nor the policy's spec.previews.image is set: set one (a template may use {sha})`,
    );
  const service = await kube.get<Service>({
    apiVersion: 'v1',
    kind: 'Service',
    namespace,
    name: policy.spec.service,
  });
  if (!service?.spec.selector)
    return finish(
      'Failed',
      'StableNotFound',
      `Service ${namespace}/${policy.spec.service} (spec.service of the policy) is missing or has no selector`,
    );
  const versionLabel = policy.spec.versionLabel ?? DEFAULTS.versionLabel;
  const stable =
    (
      await kube.list<Deployment>(
        'apps/v1',
        'Deployment',
        namespace,
        selectorString({ ...service.spec.selector, [versionLabel]: policy.spec.stable }),
      )
    )[0] ??
    (await kube.list<Deployment>('apps/v1', 'Deployment', namespace)).find((d) => {
      const labels = d.spec.template.metadata?.labels ?? {};
      return Object.entries({ ...service.spec.selector, [versionLabel]: policy.spec.stable }).every(
        ([k, v]) => labels[k] === v,
      );
    });
  if (!stable) {
    return finish(
      'Failed',
      'StableNotFound',
      `no Deployment whose pods carry ${selectorString({ ...service.spec.selector, [versionLabel]: policy.spec.stable })}: the preview is cloned from the stable version`,
    );
  }

  const ref = pinnedRef(preview.spec.pullRequest, preview.spec.commit);
  const owner = {
    apiVersion: API_VERSION,
    kind: 'Preview',
    name,
    uid: preview.metadata?.uid as string,
    controller: true,
    blockOwnerDeletion: true,
  };
  const labels = { 'app.kubernetes.io/managed-by': 'switchyard', [PREVIEW_LABEL]: name };
  const podLabels = {
    ...(stable.spec.template.metadata?.labels ?? {}),
    [versionLabel]: ref,
    [PREVIEW_ROLE_LABEL]: 'preview',
    [PREVIEW_LABEL]: name,
  };
  const [first, ...rest] = stable.spec.template.spec.containers;
  if (!first)
    return finish(
      'Failed',
      'StableNotFound',
      `Deployment ${namespace}/${stable.metadata?.name} has no container`,
    );
  const env = [
    ...(first.env ?? []).filter((e) => !(e.name in (preview.spec.env ?? {}))),
    ...Object.entries(preview.spec.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
  ];
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels, ownerReferences: [owner] },
    spec: {
      replicas: preview.spec.replicas ?? 1,
      selector: { matchLabels: { [PREVIEW_LABEL]: name } },
      template: {
        metadata: {
          labels: podLabels,
          ...(stable.spec.template.metadata?.annotations
            ? { annotations: stable.spec.template.metadata.annotations }
            : {}),
        },
        spec: { ...stable.spec.template.spec, containers: [{ ...first, image, env }, ...rest] },
      },
    },
  };
  const previewService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels, ownerReferences: [owner] },
    spec: { selector: { [PREVIEW_LABEL]: name }, ports: (service.spec.ports ?? []).map((p) => ({ ...p })) },
  };
  await kube.apply(deployment as never, FIELD_MANAGER, true);
  writes.push(`apply Deployment ${namespace}/${name}`);
  await kube.apply(previewService as never, FIELD_MANAGER, true);
  writes.push(`apply Service ${namespace}/${name}`);

  const live = await kube.get<Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name });
  const available =
    live?.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') &&
    (live.status.availableReplicas ?? 0) >= (preview.spec.replicas ?? 1);
  if (!available)
    return finish(
      'Deploying',
      'DeploymentNotAvailable',
      `Deployment ${namespace}/${name} is not available yet (image ${image})`,
    );
  const header = policy.spec.previews?.header ?? DEFAULTS.previewHeader;
  const domain = policy.spec.previews?.domain;
  const host = domain
    ? previewHost(latestRef(preview.spec.pullRequest), policy.metadata?.name as string, domain)
    : undefined;
  return finish('Ready', 'DeploymentAvailable', `serving ${image}`, {
    intercept: `${header}: ${latestRef(preview.spec.pullRequest)}`,
    ...(host ? { url: `https://${host}` } : {}),
  });
}

async function writePreviewStatus(
  kube: Kube,
  preview: LivePreview,
  phase: PreviewPhase,
  reason: Reason,
  message: string,
  extra: Record<string, string>,
  now: Date,
): Promise<void> {
  const previous = (preview.status as { conditions?: ConditionValue[] } | undefined)?.conditions;
  const conditions = mergeConditions(
    previous,
    [
      {
        type: 'Ready',
        status: phase === 'Ready' ? 'True' : 'False',
        reason,
        message,
        ...(preview.metadata?.generation !== undefined
          ? { observedGeneration: preview.metadata.generation }
          : {}),
      },
    ],
    now,
  );
  const status = {
    ...(preview.metadata?.generation !== undefined
      ? { observedGeneration: preview.metadata.generation }
      : {}),
    phase,
    ...extra,
    conditions,
  };
  if (JSON.stringify(preview.status) === JSON.stringify(status)) return;
  await kube.replaceStatus(GROUP, VERSION, 'previews', { ...preview, status } as KubernetesObject);
}
