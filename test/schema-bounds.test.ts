/**
 * Every field a person writes has a maximum (issue 27): strings a length (or a fixed set of values),
 * lists a count, maps a number of keys, numbers a largest value. A field without one is where a
 * 10 MB regex or a token bucket larger than Envoy's 32 bits came in.
 */
import type { TSchema } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { GatewayConfigSchema, PreviewSchema, TrafficPolicySchema } from '../core/resources/schema.js';

/** The path of every unbounded field of a JSON schema. */
function unbounded(schema: TSchema, path: string, out: string[]): string[] {
  const s = schema as Record<string, unknown> & {
    type?: string;
    properties?: Record<string, TSchema>;
    items?: TSchema;
    additionalProperties?: TSchema | boolean;
    patternProperties?: Record<string, TSchema>;
    anyOf?: TSchema[];
  };
  if (s.enum || s.const !== undefined) return out;
  if (s.anyOf) for (const [i, a] of s.anyOf.entries()) unbounded(a, `${path}|${i}`, out);
  switch (s.type) {
    case 'string':
      if (s.maxLength === undefined) out.push(`${path}: string without maxLength`);
      break;
    case 'integer':
    case 'number':
      if (s.maximum === undefined && s.exclusiveMaximum === undefined)
        out.push(`${path}: number without maximum`);
      break;
    case 'array':
      if (s.maxItems === undefined) out.push(`${path}: array without maxItems`);
      if (s.items) unbounded(s.items, `${path}[]`, out);
      break;
    case 'object': {
      // status is the controller's to write, never a person's.
      for (const [k, v] of Object.entries(s.properties ?? {}))
        if (!(path === '' && k === 'status')) unbounded(v, path ? `${path}.${k}` : k, out);
      const values = [
        ...Object.values(s.patternProperties ?? {}),
        ...(typeof s.additionalProperties === 'object' ? [s.additionalProperties] : []),
      ];
      if (values.length > 0 && s.maxProperties === undefined) out.push(`${path}: map without maxProperties`);
      for (const v of values) unbounded(v, `${path}{}`, out);
      break;
    }
  }
  return out;
}

describe('schema bounds', () => {
  for (const [name, schema] of [
    ['TrafficPolicy', TrafficPolicySchema],
    ['Preview', PreviewSchema],
    ['GatewayConfig', GatewayConfigSchema],
  ] as const)
    it(`every field of the ${name} has a maximum`, () => {
      expect(unbounded(schema, '', [])).toEqual([]);
    });
});
