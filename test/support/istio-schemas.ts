/**
 * Validates rendered objects against Istio's published CRD schemas, two ways:
 * - through @kubernetes-models/istio (generated from Istio 1.29's CRDs), always;
 * - against the newest upstream crd-all.gen.yaml read in place from ISTIO_CRDS (set by .ci/run to
 *   ../shared/istio/crd-all.gen.yaml; Istio's file, never copied here), when that is set.
 */
import { readFileSync } from 'node:fs';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter';
import { RequestAuthentication } from '@kubernetes-models/istio/security.istio.io/v1/RequestAuthentication';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

type Model = { validate(): void };
const MODELS: Record<string, new (data: never) => Model> = {
  'networking.istio.io/v1/VirtualService': VirtualService as never,
  'networking.istio.io/v1/DestinationRule': DestinationRule as never,
  'networking.istio.io/v1alpha3/EnvoyFilter': EnvoyFilter as never,
  'security.istio.io/v1/RequestAuthentication': RequestAuthentication as never,
};

/** Throws with the model's own message when an object does not validate. */
export function validateWithModels(obj: { apiVersion: string; kind: string }): void {
  const Ctor = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Ctor) throw new Error(`no Istio model for ${obj.apiVersion} ${obj.kind}`);
  new Ctor(structuredClone(obj) as never).validate();
}

/**
 * The API server prunes unknown fields and `kubectl apply --validate=strict` rejects them; a test
 * wants the rejection, so every object schema that does not preserve unknown fields is closed.
 */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = closeObjects(v);
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    !out['x-kubernetes-preserve-unknown-fields']
  ) {
    out.additionalProperties = false;
  }
  return out;
}

let crdValidators: Map<string, ValidateFunction> | undefined;

export function istioCrdsPath(): string | undefined {
  return process.env.ISTIO_CRDS || undefined;
}

function loadCrdValidators(path: string): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const map = new Map<string, ValidateFunction>();
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const crd = doc.toJS() as {
      kind?: string;
      spec?: {
        group: string;
        names: { kind: string };
        versions: { name: string; schema?: { openAPIV3Schema: object } }[];
      };
    } | null;
    if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
    for (const v of crd.spec.versions) {
      if (!v.schema) continue;
      map.set(
        `${crd.spec.group}/${v.name}/${crd.spec.names.kind}`,
        ajv.compile({
          ...(v.schema.openAPIV3Schema as Record<string, unknown>),
          properties: closeObjects((v.schema.openAPIV3Schema as { properties: object }).properties),
        }),
      );
    }
  }
  return map;
}

/** Validates against the CRD file's openAPIV3Schema; returns ajv's errors as text, or [] when valid. */
export function validateWithCrdFile(obj: { apiVersion: string; kind: string }, path: string): string[] {
  crdValidators ??= loadCrdValidators(path);
  const v = crdValidators.get(`${obj.apiVersion}/${obj.kind}`);
  if (!v) return [`no CRD for ${obj.apiVersion} ${obj.kind} in ${path}`];
  return v(obj) ? [] : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}
