/**
 * `npm run cluster:stop`: stops the cluster tests' cluster and removes what it left on the machine,
 * its run folder included (after SWITCHYARD_CLUSTER_KEEP, or a run that was killed).
 */
import { rmSync } from 'node:fs';
import { stopRun } from './cluster.js';
import { CLUSTER_RUN } from './setup.js';

await stopRun(CLUSTER_RUN);
rmSync(CLUSTER_RUN, { recursive: true, force: true });
console.log(`stopped the test cluster in ${CLUSTER_RUN}`);
