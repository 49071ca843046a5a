/**
 * The documentation stays true to the tree and the CLI: every relative link and every project path
 * named in README.md and docs/ exists (a link's #anchor is a heading there), every `switchyard`
 * command line they show parses as the CLI defines it (each command and flag exists), and
 * docs/cli.md lists every command the CLI has.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../cli/main.js';

const ROOT = join(import.meta.dirname, '..');
const PAGES = [
  'README.md',
  'load-tests/README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const text = (page: string) => readFileSync(join(ROOT, page), 'utf8');
const program = buildProgram({ stdout: () => undefined, stderr: () => undefined } as never, () => undefined);

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
const anchorOf = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchorsIn = (page: string) =>
  new Set(
    text(page)
      .split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => anchorOf(l.replace(/^#+ /, ''))),
  );

/** Lines outside fenced code blocks, and the fenced lines, of a page. */
function splitFences(page: string): { prose: string[]; code: string[] } {
  const prose: string[] = [];
  const code: string[] = [];
  let fenced = false;
  for (const line of text(page).split('\n')) {
    if (line.trimStart().startsWith('```')) fenced = !fenced;
    else (fenced ? code : prose).push(line);
  }
  return { prose, code };
}

/** `switchyard …` command lines a page shows: in code blocks, and in inline code. */
function commandLines(page: string): string[] {
  const { prose, code } = splitFences(page);
  const fromCode = code.flatMap((l) => {
    const m = l.match(/(?:^|\$ |npx |&& )switchyard ((?:[^#|]|\\\|)*)/);
    return m ? [m[1] as string] : [];
  });
  // A shell pipe ends the command (`switchyard crds | kubectl apply -f -`); a table's `\|` does not.
  const fromProse = prose.flatMap((l) =>
    [...l.matchAll(/`(?:npx )?switchyard ([^`]+)`/g)].map((m) => (m[1] as string).split(' | ')[0] as string),
  );
  return [...fromCode, ...fromProse].map((l) => l.trim());
}

/** The command a line names (subcommands followed as far as they go), and its flags. */
function parseLine(line: string): { command: Command; path: string[]; flags: string[] } {
  const words = line.replace(/\\\|/g, '|').split(/\s+/);
  let command = program;
  const path: string[] = [];
  for (const word of words) {
    const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    command = sub;
    path.push(word);
  }
  const flags = words
    .flatMap((w) => w.replace(/[[\]()]/g, ' ').split(/[\s|]+/))
    .filter((w) => /^--?[a-zA-Z]/.test(w))
    .map((w) => w.replace(/[=,.:].*$/, ''));
  return { command, path, flags };
}

const flagsOf = (command: Command) =>
  new Set(['--help', '-h', ...command.options.flatMap((o) => [o.long, o.short].filter(Boolean) as string[])]);

describe('the documentation', () => {
  it.each(PAGES)('%s: every relative link and #anchor exists', (page) => {
    const broken: string[] = [];
    for (const [, target] of text(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path ? relative(ROOT, join(ROOT, dirname(page), path)) : page;
      if (!existsSync(join(ROOT, file))) broken.push(`${target} (no ${file})`);
      else if (anchor && file.endsWith('.md') && !anchorsIn(file).has(anchor))
        broken.push(`${target} (no heading #${anchor} in ${file})`);
    }
    expect(broken).toEqual([]);
  });

  it.each(PAGES)('%s: every project path it names exists', (page) => {
    const named = [
      ...text(page).matchAll(
        /`((?:docs|deploy|test|load-tests|core|cli|gateway|controllers|kube|pr-bot|sdk|\.ci)\/[^`\s]*)`/g,
      ),
    ]
      .map((m) => (m[1] as string).replace(/[:,]$/, ''))
      .filter((p) => !/[<>*{}]|\.\.\./.test(p));
    expect(named.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  it.each(PAGES)('%s: every switchyard command it shows exists, with the flags it shows', (page) => {
    const wrong: string[] = [];
    for (const line of commandLines(page)) {
      if (line.startsWith('<')) continue; // `switchyard <command>`
      const { command, path, flags } = parseLine(line);
      if (path.length === 0 && flags.every((f) => ['--version', '-V', '--help'].includes(f))) continue;
      if (path.length === 0) {
        wrong.push(`${line}: no such command`);
        continue;
      }
      const known = flagsOf(command);
      for (const flag of flags) if (!known.has(flag)) wrong.push(`${line}: ${path.join(' ')} has no ${flag}`);
    }
    expect(wrong).toEqual([]);
  });

  it('docs/cli.md lists every command the CLI has, each with all of its flags', () => {
    const rows = text('docs/cli.md')
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .flatMap((l) => [...(l.split(' | ')[0] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1] as string));
    const documented = new Map<string, Set<string>>();
    for (const row of rows) {
      const { path, flags } = parseLine(row);
      const key = path.join(' ');
      documented.set(key, new Set([...(documented.get(key) ?? []), ...flags]));
    }
    const leaves = (c: Command, prefix: string[] = []): [string, Command][] =>
      c.commands.length === 0
        ? [[prefix.join(' '), c]]
        : c.commands.flatMap((sub) => leaves(sub, [...prefix, sub.name()]));
    const missing: string[] = [];
    for (const [name, command] of leaves(program)) {
      const flags = documented.get(name);
      if (!flags) {
        missing.push(`${name}: not in docs/cli.md`);
        continue;
      }
      for (const o of command.options)
        if (!flags.has(o.long as string) && !(o.short && flags.has(o.short)))
          missing.push(`${name}: ${o.long} not in docs/cli.md`);
    }
    expect(missing).toEqual([]);
  });
});
