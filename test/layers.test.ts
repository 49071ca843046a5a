/** The layering of docs/architecture.md holds, and the check would see a breach. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderImports, layerBreaches } from './support/layers.js';
import { tempDir } from './support/temp.js';

const root = join(import.meta.dirname, '..');

describe('import layers', () => {
  it('the core imports nothing above it; controllers, gateway and pr-bot not one another; no folder imports one that imports it back', () => {
    expect(layerBreaches(root)).toEqual([]);
    // The check reads the real tree: the CLI composes the three parts.
    const edges = folderImports(root).map((e) => `${e.from.split('/')[0]}->${e.to.split('/')[0]}`);
    for (const edge of ['cli->controllers', 'cli->gateway', 'cli->pr-bot', 'controllers->kube', 'kube->core'])
      expect(edges).toContain(edge);
  });

  it('reports an import across the layers, and two folders importing each other', () => {
    const tree = tempDir('switchyard-layers-');
    const file = (path: string, text: string) => {
      mkdirSync(join(tree, path, '..'), { recursive: true });
      writeFileSync(join(tree, path), text);
    };
    file('core/compiler/a.ts', "import { b } from '../istio/b.js';\n");
    file(
      'core/istio/b.ts',
      "import { a } from '../compiler/a.js';\nimport { g } from '../../gateway/g.js';\n",
    );
    file('gateway/g.ts', "import { p } from '../pr-bot/p.js';\n");
    file('pr-bot/p.ts', 'export const p = 1;\n');
    expect(layerBreaches(tree).sort()).toEqual([
      'core/ may not import gateway/: core/istio/b.ts imports ../../gateway/g.js',
      'core/compiler/ and core/istio/ import each other: core/compiler/a.ts imports ../istio/b.js',
      'gateway/ may not import pr-bot/: gateway/g.ts imports ../pr-bot/p.js',
    ]);
  });
});
