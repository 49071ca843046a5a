// Prints `tests: N passed, N failed, N skipped` from vitest's JSON report; exits 1 when the report
// is missing or counts no test (a run that tested nothing is not a pass).
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`tests: 0 passed, 1 failed, 0 skipped (no vitest report at ${file}: ${e.message})`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// A file that failed without a failing test (it did not load, a hook threw) counts once; a file's
// failing tests count themselves.
const brokenFiles = (report.testResults ?? []).filter(
  (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((t) => t.status === 'failed'),
).length;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
