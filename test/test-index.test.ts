/** test/INDEX.md, which lists the tests of each product module, is in step with the tree. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { buildTestIndex } from './support/test-index.js';

const ROOT = join(import.meta.dirname, '..');

it('test/INDEX.md is up to date (npm run test-index writes it)', () => {
  const index = buildTestIndex(ROOT);
  expect(index).toContain('| `gateway/mirror.ts` |');
  expect(readFileSync(join(ROOT, 'test', 'INDEX.md'), 'utf8')).toBe(index);
});
