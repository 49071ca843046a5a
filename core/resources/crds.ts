/**
 * CRD manifests from the same TypeBox schemas the validator uses. A structural schema may not
 * combine `properties` with `additionalProperties` and knows no `const`, so those are translated;
 * unknown fields are then pruned by the API server instead of rejected, which is why the
 * controller validates with `validate.ts` as well.
 */
import type { TSchema } from '@sinclair/typebox';
import { MANAGED_BY_VALUE, PART_OF } from './labels.js';
import {
  GROUP,
  PreviewSpec,
  PreviewStatus,
  RESOURCE,
  TrafficPolicySpec,
  TrafficPolicyStatus,
  VERSION,
} from './schema.js';

const KEEP = new Set([
  'type',
  'properties',
  'items',
  'required',
  'description',
  'pattern',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'enum',
  'format',
  'default',
  'nullable',
  'uniqueItems',
]);

/** JSON Schema (as TypeBox writes it) → an OpenAPI v3 structural schema node. */
export function toStructural(schema: TSchema | Record<string, unknown>): Record<string, unknown> {
  const s = schema as Record<string, unknown>;
  if ('const' in s) return { type: typeof s.const, enum: [s.const] };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (!KEEP.has(k)) continue;
    if (k === 'uniqueItems') continue; // not allowed in structural schemas; the validator checks it
    if (k === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(v as object).map(([p, ps]) => [p, toStructural(ps)]),
      );
    } else if (k === 'items') {
      out.items = toStructural(v as TSchema);
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(s.anyOf)) {
    // TypeBox writes `Type.Union([T, Null])` this way: a nullable T.
    const nonNull = (s.anyOf as Record<string, unknown>[]).filter((x) => x.type !== 'null');
    if (nonNull.length === 1) return { ...toStructural(nonNull[0] as TSchema), nullable: true };
  }
  if (s.type === 'object' && !s.properties && s.patternProperties) {
    const [valueSchema] = Object.values(s.patternProperties as object);
    out.additionalProperties = toStructural(valueSchema as TSchema);
  }
  if (s.type === 'object' && s.properties && Object.keys(s.properties as object).length === 0) {
    out.properties = undefined;
    delete out.properties;
  }
  return out;
}

interface CrdInput {
  kind: string;
  plural: string;
  shortNames: string[];
  spec: TSchema;
  status: TSchema;
  columns: { name: string; type: string; jsonPath: string; description?: string; priority?: number }[];
}

function crd(input: CrdInput): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${input.plural}.${GROUP}`, labels: { [PART_OF]: MANAGED_BY_VALUE } },
    spec: {
      group: GROUP,
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular: input.kind.toLowerCase(),
        shortNames: input.shortNames,
        categories: ['switchyard'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...input.columns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructural(input.spec),
                status: toStructural(input.status),
              },
            },
          },
        },
      ],
    },
  };
}

/** The two CRDs, in the order `switchyard crds` prints them. */
export function customResourceDefinitions(): Record<string, unknown>[] {
  return [
    crd({
      ...RESOURCE.TrafficPolicy,
      shortNames: ['tp', 'tpol'],
      spec: TrafficPolicySpec,
      status: TrafficPolicyStatus,
      columns: [
        { name: 'Service', type: 'string', jsonPath: '.spec.service' },
        { name: 'Stable', type: 'string', jsonPath: '.spec.stable' },
        { name: 'Canary', type: 'string', jsonPath: '.spec.canary.version' },
        {
          name: 'Weight',
          type: 'integer',
          jsonPath: '.spec.canary.weight',
          description: 'percent of traffic on the canary',
        },
        { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      ],
    }),
    crd({
      ...RESOURCE.Preview,
      shortNames: ['pv'],
      spec: PreviewSpec,
      status: PreviewStatus,
      columns: [
        { name: 'Policy', type: 'string', jsonPath: '.spec.policy' },
        { name: 'PR', type: 'integer', jsonPath: '.spec.pullRequest' },
        { name: 'Commit', type: 'string', jsonPath: '.spec.commit', priority: 1 },
        { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
        { name: 'URL', type: 'string', jsonPath: '.status.url' },
      ],
    }),
  ];
}
