/** Multi-document YAML and kubectl-style JSON lists, byte-for-byte deterministic. */
import { stringify } from 'yaml';

export function toYamlDocuments(objects: readonly unknown[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}

export function toJsonList(objects: readonly unknown[]): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
}

export function formatObjects(objects: readonly unknown[], format: string): string {
  return format === 'json' ? toJsonList(objects) : toYamlDocuments(objects);
}
