/** Every error code, and only those, is documented in docs/errors.md (as fastify does for FST_ERR_*). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ERROR_CODES } from '../core/common/errors.js';

it('docs/errors.md documents exactly the codes in core/common/errors.ts', () => {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'errors.md'), 'utf8');
  const documented = [...doc.matchAll(/^### (SY_[A-Z_]+)$/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
});
