// Prints `tests: N passed, N failed, N skipped` from vitest's JSON reports (one per suite: npm test,
// npm run test:cluster), after a count line for each adversarial suite; exits 1 when a report is
// missing or the reports count no test (a run that tested nothing is not a pass).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** The project's own adversarial suites (issue 27): each gets its own count line. */
const ADVERSARIAL = {
  'property tests': ['hostile-property.test.ts', 'property.test.ts', 'mesh-property.test.ts'],
  'HTTP/1.1 raw-socket suite': ['gateway-http1-raw.test.ts'],
  h2spec: ['gateway-h2spec.test.ts'],
  'reload fuzz': ['gateway-reload-fuzz.test.ts'],
};

let passed = 0;
let failed = 0;
let skipped = 0;
const files = [];
for (const file of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`(no vitest report at ${file}: ${e.message})`);
    failed++;
    continue;
  }
  passed += report.numPassedTests ?? 0;
  // A file that failed without a failing test (it did not load, a hook threw) counts once; a
  // file's failing tests count themselves.
  const brokenFiles = (report.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((t) => t.status === 'failed'),
  ).length;
  failed += (report.numFailedTests ?? 0) + brokenFiles;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  files.push(...(report.testResults ?? []));
}
for (const [suite, names] of Object.entries(ADVERSARIAL)) {
  const results = files
    .filter((f) => names.includes(basename(f.name)))
    .flatMap((f) => f.assertionResults ?? []);
  const count = (s) => results.filter((t) => t.status === s).length;
  console.log(
    `  ${suite}: ${count('passed')} passed, ${count('failed')} failed, ${count('pending') + count('skipped')} skipped`,
  );
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
