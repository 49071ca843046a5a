// `npm version <new>` runs this (package.json's "version" script) after it bumps package.json,
// the one place Switchyard's version is set: the chart's version and appVersion and the image
// tag of `switchyard install` follow it, and the bump's commit carries them
// (test/helm-chart.test.ts and test/install.test.ts check they agree).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const edits = [
  ['deploy/helm/switchyard/Chart.yaml', /^(version|appVersion): .*$/gm, (_, key) => `${key}: ${version}`],
  [
    'deploy/install/controller.yaml',
    /(image: ghcr\.io\/switchyard-dev\/switchyard:).*$/gm,
    (_, image) => `${image}${version}`,
  ],
  [
    'deploy/install/gateway.yaml',
    /(image: ghcr\.io\/switchyard-dev\/switchyard:).*$/gm,
    (_, image) => `${image}${version}`,
  ],
];
for (const [file, pattern, replace] of edits) {
  const path = join(root, file);
  writeFileSync(path, readFileSync(path, 'utf8').replace(pattern, replace));
}
console.log(`version ${version}: ${edits.map(([f]) => f).join(', ')}`);
