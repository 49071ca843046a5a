/**
 * Each path through the product (a request, a reconcile, a command) is a sequence of named steps
 * small enough to read at once: no function in the product folders is longer than 80 lines, unless
 * a comment `// long: <why>` on the line before it says why (a data table, a schema).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const PRODUCT = ['cli', 'controllers', 'gateway', 'kube', 'pr-bot', 'core', 'sdk'];
const MAX_LINES = 80;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const path = join(dir, f);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every function over `max` lines in `text`, as `file:line name (N lines)`, less those a `// long:` comment excuses. */
function longFunctions(file: string, text: string, max = MAX_LINES): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lines = text.split('\n');
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isFunctionDeclaration(node) ||
      ts.isFunctionExpression(node) ||
      ts.isArrowFunction(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isConstructorDeclaration(node)
    ) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const statementLine = source.getLineAndCharacterOfPosition(
        (ts.isVariableDeclaration(node.parent) ? node.parent.parent.parent : node).getStart(),
      ).line;
      const excused = /^\s*\/\/ long: \S/.test(lines[statementLine - 1] ?? '');
      if (end - start + 1 > max && !excused) {
        const name =
          (node as { name?: ts.Node }).name?.getText() ??
          (ts.isVariableDeclaration(node.parent) ? node.parent.name.getText() : '(anonymous)');
        found.push(`${file}:${start + 1} ${name} (${end - start + 1} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('function length', () => {
  it(`no function in the product folders is over ${MAX_LINES} lines, unless a comment says why`, () => {
    const files = PRODUCT.flatMap((dir) => tsFiles(join(ROOT, dir)));
    expect(files.length).toBeGreaterThan(50);
    const long = files.flatMap((f) => longFunctions(relative(ROOT, f), readFileSync(f, 'utf8')));
    expect(long).toEqual([]);
  });

  it('sees a long function, and lets one a comment excuses pass', () => {
    const body = Array.from({ length: 5 }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const text = `function short() {\n${body}\n}\nconst arrow = () => {\n${body}\n};\n// long: a table\nfunction table() {\n${body}\n}\n`;
    expect(longFunctions('x.ts', text, 4)).toEqual(['x.ts:1 short (7 lines)', 'x.ts:8 arrow (7 lines)']);
  });
});
